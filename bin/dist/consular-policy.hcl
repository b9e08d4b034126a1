# The Consul ACL policy consular needs, and nothing more (Consul 1.8 rules syntax):
#   consul acl policy create -name consular -rules @bin/dist/consular-policy.hcl
#   consul acl token create -description consular -policy-name consular
# Under --ha, also attach consular-ha-policy.hcl. Each rule is on one line: the end-to-end tests
# (bin/tests/acl.rs) drop one line at a time and check that the bridge then fails and says why.

# Register and deregister the services of Marathon's tasks, on every agent (their names are the
# app ids, so any name), and update and remove their checks. Also lets the agent list them.
service_prefix "" { policy = "write" }
# Read the catalog's nodes: which hosts are cluster members, which agents have failed.
node_prefix "" { policy = "read" }
# Write and delete the app labels under consular/ (in transactions), and read them back.
key_prefix "consular/" { policy = "write" }
