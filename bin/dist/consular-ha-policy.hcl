# What consular needs beyond consular-policy.hcl under --ha (Consul 1.8 rules syntax):
#   consul acl policy create -name consular-ha -rules @bin/dist/consular-ha-policy.hcl
# and give the token both policies. Each rule is on one line, as in consular-policy.hcl.

# Create, renew and destroy the lock and status sessions, on the node of the Consul agent
# --consul reaches (any node name, so the same policy works wherever consular runs).
session_prefix "" { policy = "write" }
# The lock key and the instances' status keys, service/consular/<registration-id>/…
# (with --ha-key elsewhere, grant write on that key instead).
key_prefix "service/consular/" { policy = "write" }
# The `consular` service each instance registers is covered by consular-policy.hcl's
# service_prefix rule.
