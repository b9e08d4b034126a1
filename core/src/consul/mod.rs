//! Consul: the service registration body and ownership tags, service checks, KV layout and transactions, response
//! parsing, the paths of the Consul API calls the bridge makes, and the ACL rule each needs. What to write is decided in
//! [`crate::plan`]; when, in [`crate::bridge`].

mod acl;
mod check;
mod external;
mod kv;
mod service;
mod session;

pub use acl::{AclDenial, AclRule};
pub use check::{
    check_deregister_path, check_update_path, parse_agent_checks, CheckProbe, CheckState,
    CheckStatus, ListedCheck, ServiceCheck, AGENT_CHECKS_PATH, CHECK_ID_PREFIX, MIRROR_TTL,
};
pub use external::{
    external_deregister_body, external_register_body, node_checks_path, node_services_path,
    parse_node_checks, parse_node_services, CatalogEntry, ExternalListing, CATALOG_DEREGISTER_PATH,
    CATALOG_REGISTER_PATH, EXTERNAL_NODE_META, EXTERNAL_PROBE_META, OWNER_NODE_META,
};
pub use kv::{
    guarded_txn_batches, kv_mark, kv_tree_path, label_key, label_value, parse_kv_entries,
    txn_batches, txn_body, KvEntry, KvKey, TxnBatch, TxnOp, KV_ROOT, TXN_MAX_BYTES, TXN_MAX_OPS,
    TXN_PATH,
};
pub use service::{
    agent_host, deregister_path, parse_agent_services, parse_catalog_nodes, parse_failed_nodes,
    port_service_id, service_name, task_of_service, CatalogNode, Registration, AGENT_SERVICES_PATH,
    APP_ID_TAG_PREFIX, CATALOG_NODES_PATH, CRITICAL_CHECKS_PATH, REGISTER_PATH, REG_ID_TAG_PREFIX,
};
pub use session::{
    kv_key_path, kv_lock_path, kv_watch_path, parse_lock_answer, parse_lock_holder,
    parse_session_created, session_create_body, session_destroy_path, session_renew_path,
    LockHolder, LockVerb, SessionBehavior, SESSION_CREATE_PATH,
};
