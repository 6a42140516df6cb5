package harbormaster.noop

# METADATA
# title: Never fires
# description: Baseline rule for benchmarks.
# custom:
#   id: HM-NOOP-001
#   severity: low
#   enforcement: deny
#   control: NONE
deny contains violation if {
	input.request.kind.kind == "NoSuchKind"
	violation := {"id": "HM-NOOP-001", "msg": "never", "field": ""}
}
