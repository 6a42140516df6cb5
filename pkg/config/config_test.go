package config

import (
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

const header = "apiVersion: config.harbormaster.io/v1alpha1\nkind: HarbormasterConfig\n"

const fullDocument = header + `overcommit:
  default: {cpu: 2, memory: 1}
  hostGroups: {batch: {cpu: 4}}
  namespaces: {team-a-web: {cpu: 10, memory: 1.5}}
  minCPURequest: 20m
  minMemoryRequest: 32Mi
antiAffinity:
  enabled: true
  weight: 40
  topologyKey: topology.kubernetes.io/zone
  identityLabels:
    - [app]
  workloadClasses:
    cpu-intensive: {weight: 80, topologyKey: kubernetes.io/hostname}
    io-heavy: {}
hostGroups:
  general:
    nodeSelector:
      matchLabels: {harbormaster.io/host-group: general}
      matchExpressions: []
  batch:
    nodeSelector:
      matchExpressions:
        - {key: pool, operator: In, values: [batch]}
        - {key: gpu, operator: DoesNotExist}
tenants:
  team-a:
    hostGroups: [general, batch]
    defaultHostGroup: general
    maxGPUsPerPod: 0
    allowedGPUModels: [NVIDIA-A100-SXM4-80GB]
    allowedRegistries: [registry.example.com/team-a/]
  team-b: {}
dedicatedPools:
  spark-a: {tenant: team-a, app: spark, placement: required}
  cache-a: {tenant: team-a, placement: preferred}
  plain: {tenant: team-b}
dedicatedAppLabel: app
exemptNamespaces: [extra-ns]
privileged:
  users: [alice]
  groups: [system:masters]
policy:
  enforcement: {HM-HG-001: warn}
`

func TestParseFullDocument(t *testing.T) {
	c, err := Parse([]byte(fullDocument))
	require.NoError(t, err)
	assert.Equal(t, 2.0, *c.Overcommit.Default.CPU)
	assert.Equal(t, "20m", c.Overcommit.MinCPURequest.String())
	assert.Equal(t, int32(40), *c.AntiAffinity.Weight)
	assert.Equal(t, [][]string{{"app"}}, c.AntiAffinity.IdentityLabels)
	assert.Equal(t, WorkloadClass{Weight: ptrTo(int32(80)), TopologyKey: "kubernetes.io/hostname"}, c.AntiAffinity.WorkloadClasses["cpu-intensive"])
	assert.Equal(t, WorkloadClass{Weight: ptrTo(int32(40)), TopologyKey: "topology.kubernetes.io/zone"}, c.AntiAffinity.WorkloadClasses["io-heavy"],
		"class defaults come from antiAffinity")
	assert.Equal(t, PlacementPreferred, c.DedicatedPools["cache-a"].Placement)
	assert.Equal(t, PlacementRequired, c.DedicatedPools["plain"].Placement)
	assert.Equal(t, "app", c.DedicatedAppLabel)
	assert.Equal(t, []corev1.NodeSelectorRequirement{
		{Key: "pool", Operator: corev1.NodeSelectorOpIn, Values: []string{"batch"}},
		{Key: "gpu", Operator: corev1.NodeSelectorOpDoesNotExist},
	}, c.HostGroups["batch"].NodeSelector.Requirements())
	assert.Equal(t, []corev1.NodeSelectorRequirement{
		{Key: LabelHostGroup, Operator: corev1.NodeSelectorOpIn, Values: []string{"general"}},
	}, c.HostGroups["general"].NodeSelector.Requirements())
	require.NotNil(t, c.Tenants["team-a"].MaxGPUsPerPod)
	assert.Equal(t, int64(0), *c.Tenants["team-a"].MaxGPUsPerPod, "0 means no GPUs, distinct from unset")
	assert.Nil(t, c.Tenants["team-b"].MaxGPUsPerPod)
	assert.Equal(t, []string{"registry.example.com/team-a/"}, c.Tenants["team-a"].AllowedRegistries)
	assert.Equal(t, EnforcementWarn, c.Policy.Enforcement["HM-HG-001"])
}

func TestDefaults(t *testing.T) {
	for name, c := range map[string]*Config{
		"Default()":       Default(),
		"header only":     mustParse(t, header),
		"empty sections":  mustParse(t, header+"overcommit: {}\nantiAffinity: {}\n"),
		"null values map": mustParse(t, header+"overcommit:\n  default:\n"),
	} {
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, 1.0, *c.Overcommit.Default.CPU)
			assert.Equal(t, 1.0, *c.Overcommit.Default.Memory)
			assert.Equal(t, 0, c.Overcommit.MinCPURequest.Cmp(resource.MustParse("10m")))
			assert.Equal(t, 0, c.Overcommit.MinMemoryRequest.Cmp(resource.MustParse("16Mi")))
			assert.True(t, c.AntiAffinity.IsEnabled())
			assert.Equal(t, int32(50), *c.AntiAffinity.Weight)
			assert.Equal(t, "kubernetes.io/hostname", c.AntiAffinity.TopologyKey)
			assert.Equal(t, DefaultIdentityLabels(), c.AntiAffinity.IdentityLabels)
			assert.Equal(t, "app.kubernetes.io/name", c.DedicatedAppLabel)
			assert.Empty(t, c.Validate())
		})
	}
}

func TestExplicitValuesAreNotDefaulted(t *testing.T) {
	c := mustParse(t, header+"antiAffinity: {enabled: false, identityLabels: []}\novercommit: {minCPURequest: 0, minMemoryRequest: \"0\"}\n")
	assert.False(t, c.AntiAffinity.IsEnabled())
	assert.Empty(t, c.AntiAffinity.IdentityLabels, "an explicit empty list turns identity anti-affinity off")
	assert.True(t, c.Overcommit.MinCPURequest.IsZero())
	assert.True(t, c.Overcommit.MinMemoryRequest.IsZero())
}

func mustParse(t *testing.T, doc string) *Config {
	t.Helper()
	c, err := Parse([]byte(doc))
	require.NoError(t, err)
	return c
}

func TestParseErrors(t *testing.T) {
	const groups = "hostGroups:\n  general: {nodeSelector: {matchLabels: {harbormaster.io/host-group: general}}}\n"
	tests := []struct {
		name string
		doc  string
		want []string // every one must appear in the error
	}{
		{"empty document", "", []string{`apiVersion: Required value`, `kind: Required value`}},
		{"wrong apiVersion and kind", "apiVersion: v1\nkind: ConfigMap\n", []string{
			`apiVersion: Unsupported value: "v1": supported values: "config.harbormaster.io/v1alpha1"`,
			`kind: Unsupported value: "ConfigMap"`}},
		{"not YAML", header + "overcommit: [", []string{"decoding config.yaml"}},
		{"duplicate key", header + "kind: HarbormasterConfig\n", []string{`key "kind" already set`}},
		{"unknown fields", header + "foo: 1\novercommit:\n  default: {cpu: 2, gpu: 3}\n", []string{
			`foo: Forbidden: unknown field`, `overcommit.default.gpu: Forbidden: unknown field`}},
		{"wrong type", header + "overcommit: {default: {cpu: lots}}\n", []string{"overcommit.default.cpu"}},
		{"NaN ratio", header + "overcommit: {default: {cpu: .nan}}\n", []string{"NaN and infinities are not valid numbers"}},
		{"ratios out of range", header + `overcommit:
  default: {cpu: 0.5, memory: 101}
  namespaces: {team-a: {cpu: 0.5}, Bad_NS: {memory: 0}}
`, []string{
			`overcommit.default.cpu: Invalid value: 0.5: must be >= 1 and <= 100`,
			`overcommit.default.memory: Invalid value: 101: must be >= 1 and <= 100`,
			`overcommit.namespaces[team-a].cpu: Invalid value: 0.5: must be >= 1 and <= 100`,
			`overcommit.namespaces[Bad_NS]: Invalid value: "Bad_NS"`,
			`overcommit.namespaces[Bad_NS].memory: Invalid value: 0: must be >= 1 and <= 100`}},
		{"ratio of undefined host group", header + "overcommit: {hostGroups: {batch: {cpu: 4}}}\n", []string{
			`overcommit.hostGroups[batch]: Not found: "batch"`}},
		{"negative floors", header + "overcommit: {minCPURequest: -1m, minMemoryRequest: -1}\n", []string{
			`overcommit.minCPURequest: Invalid value: "-1m": must be non-negative`,
			`overcommit.minMemoryRequest: Invalid value: "-1": must be non-negative`}},
		{"unparsable floor", header + "overcommit: {minCPURequest: lots}\n", []string{`overcommit.minCPURequest: Invalid value: "lots"`}},
		{"anti-affinity", header + `antiAffinity:
  weight: 0
  topologyKey: "not a key"
  identityLabels: [[], [app, app], ["bad key!"]]
  workloadClasses:
    hot: {weight: 101, topologyKey: "-x"}
    "bad class!": {}
`, []string{
			`antiAffinity.weight: Invalid value: 0: must be >= 1 and <= 100`,
			`antiAffinity.topologyKey: Invalid value: "not a key"`,
			`antiAffinity.identityLabels[0]: Required value`,
			`antiAffinity.identityLabels[1][1]: Duplicate value: "app"`,
			`antiAffinity.identityLabels[2][0]: Invalid value: "bad key!"`,
			`antiAffinity.workloadClasses[hot].weight: Invalid value: 101: must be >= 1 and <= 100`,
			`antiAffinity.workloadClasses[hot].topologyKey: Invalid value: "-x"`,
			`antiAffinity.workloadClasses[bad class!]: Invalid value: "bad class!"`}},
		{"host group selectors", header + `hostGroups:
  empty: {nodeSelector: {}}
  bad:
    nodeSelector:
      matchLabels: {"bad key!": "bad value!"}
      matchExpressions:
        - {key: a, operator: In}
        - {key: b, operator: Exists, values: [x]}
        - {key: c, operator: Gt, values: [x]}
        - {key: d, operator: Lt}
        - {key: e, operator: Near, values: [x]}
        - {key: "", operator: NotIn, values: ["bad value!"]}
`, []string{
			`hostGroups[empty].nodeSelector: Required value: must have at least one requirement`,
			`hostGroups[bad].nodeSelector.matchLabels[bad key!]: Invalid value: "bad key!"`,
			`hostGroups[bad].nodeSelector.matchLabels[bad key!]: Invalid value: "bad value!"`,
			`hostGroups[bad].nodeSelector.matchExpressions[0].values: Required value`,
			`hostGroups[bad].nodeSelector.matchExpressions[1].values: Forbidden`,
			`hostGroups[bad].nodeSelector.matchExpressions[2].values[0]: Invalid value: "x": must be an integer`,
			`hostGroups[bad].nodeSelector.matchExpressions[3].values: Required value`,
			`hostGroups[bad].nodeSelector.matchExpressions[4].operator: Unsupported value: "Near"`,
			`hostGroups[bad].nodeSelector.matchExpressions[5].key: Required value`,
			`hostGroups[bad].nodeSelector.matchExpressions[5].values[0]: Invalid value: "bad value!"`}},
		{"host group name", header + "hostGroups:\n  \"bad group!\": {nodeSelector: {matchLabels: {a: b}}}\n", []string{
			`hostGroups[bad group!]: Invalid value: "bad group!"`}},
		{"tenants", header + groups + `tenants:
  team-a: {hostGroups: [general, general, gpu], defaultHostGroup: batch}
  team-b: {defaultHostGroup: general}
`, []string{
			`tenants[team-a].hostGroups[1]: Duplicate value: "general"`,
			`tenants[team-a].hostGroups[2]: Not found: "gpu"`,
			`tenants[team-a].defaultHostGroup: Invalid value: "batch": must be one of the tenant's hostGroups`,
			`tenants[team-b].defaultHostGroup: Invalid value: "general"`}},
		{"dedicated pools", header + groups + `tenants: {team-a: {hostGroups: [general]}}
dedicatedPools:
  no-owner: {}
  ghost: {tenant: team-z}
  wrong: {tenant: team-a, app: "bad app!", placement: sometimes}
  "bad pool!": {tenant: team-a}
dedicatedAppLabel: "bad label!"
`, []string{
			`dedicatedPools[no-owner].tenant: Required value`,
			`dedicatedPools[ghost].tenant: Not found: "team-z"`,
			`dedicatedPools[wrong].app: Invalid value: "bad app!"`,
			`dedicatedPools[wrong].placement: Unsupported value: "sometimes": supported values: "required", "preferred"`,
			`dedicatedPools[bad pool!]: Invalid value: "bad pool!"`,
			`dedicatedAppLabel: Invalid value: "bad label!"`}},
		{"exempt namespaces and privileged", header + `exemptNamespaces: [ok, Not_DNS, ok]
privileged: {users: ["", alice, alice], groups: [g, g]}
`, []string{
			`exemptNamespaces[1]: Invalid value: "Not_DNS"`,
			`exemptNamespaces[2]: Duplicate value: "ok"`,
			`privileged.users[0]: Required value`,
			`privileged.users[2]: Duplicate value: "alice"`,
			`privileged.groups[1]: Duplicate value: "g"`}},
		{"tenant governance fields", header + groups + `tenants:
  team-a:
    maxGPUsPerPod: -1
    allowedGPUModels: ["", "bad model!", A100, A100]
    allowedRegistries: [reg.example.com/a/, reg.example.com/a/, ""]
policy:
  enforcement: {HM-HG-001: warn, HM-RS-001: block}
`, []string{
			`tenants[team-a].maxGPUsPerPod: Invalid value: -1: must not be negative`,
			`tenants[team-a].allowedGPUModels[0]: Required value`,
			`tenants[team-a].allowedGPUModels[1]: Invalid value: "bad model!"`,
			`tenants[team-a].allowedGPUModels[3]: Duplicate value: "A100"`,
			`tenants[team-a].allowedRegistries[1]: Duplicate value: "reg.example.com/a/"`,
			`tenants[team-a].allowedRegistries[2]: Required value`,
			`policy.enforcement[HM-RS-001]: Unsupported value: "block"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.doc))
			require.Error(t, err)
			assert.Nil(t, c)
			for _, want := range tt.want {
				assert.Contains(t, err.Error(), want)
			}
		})
	}
}

func TestValidateNonFiniteRatios(t *testing.T) {
	c := Default()
	c.Overcommit.Default.CPU = ptrTo(math.NaN())
	c.Overcommit.Default.Memory = ptrTo(math.Inf(1))
	msg := c.Validate().ToAggregate().Error()
	assert.Contains(t, msg, "overcommit.default.cpu: Invalid value: NaN: must be a finite number")
	assert.Contains(t, msg, "overcommit.default.memory: Invalid value: +Inf: must be a finite number")
}

func TestValidateListsEveryProblemInOrder(t *testing.T) {
	doc := header + "overcommit: {default: {cpu: 0, memory: 0}}\nexemptNamespaces: [A]\n"
	_, err := Parse([]byte(doc))
	require.Error(t, err)
	assert.Equal(t, 3, strings.Count(err.Error(), "Invalid value"), err.Error())
	// Deterministic: the same document yields the same message.
	_, again := Parse([]byte(doc))
	assert.Equal(t, err.Error(), again.Error())
}

func TestRatiosPrecedence(t *testing.T) {
	c := mustParse(t, header+`overcommit:
  default: {cpu: 2, memory: 1.5}
  hostGroups: {batch: {cpu: 4}, mem: {memory: 3}}
  namespaces: {web: {cpu: 10}, db: {memory: 1}, both: {cpu: 8, memory: 6}}
hostGroups:
  batch: {nodeSelector: {matchLabels: {g: batch}}}
  mem: {nodeSelector: {matchLabels: {g: mem}}}
`)
	tests := []struct {
		namespace, hostGroup string
		cpu, memory          float64
	}{
		{"other", "", 2, 1.5},
		{"other", "unknown", 2, 1.5},
		{"other", "batch", 4, 1.5},
		{"other", "mem", 2, 3},
		{"web", "", 10, 1.5},
		{"web", "batch", 10, 1.5},
		{"web", "mem", 10, 3},
		{"db", "batch", 4, 1},
		{"both", "mem", 8, 6},
	}
	for _, tt := range tests {
		cpu, memory := c.Ratios(tt.namespace, tt.hostGroup)
		assert.Equal(t, tt.cpu, cpu, "cpu of %s/%s", tt.namespace, tt.hostGroup)
		assert.Equal(t, tt.memory, memory, "memory of %s/%s", tt.namespace, tt.hostGroup)
	}

	unvalidated := &Config{}
	cpu, memory := unvalidated.Ratios("x", "")
	assert.Equal(t, [2]float64{1, 1}, [2]float64{cpu, memory}, "an undefaulted config never amplifies")
	unvalidated.Overcommit.Default = Ratios{CPU: ptrTo(0.1), Memory: ptrTo(math.NaN())}
	cpu, memory = unvalidated.Ratios("x", "")
	assert.Equal(t, [2]float64{1, 1}, [2]float64{cpu, memory}, "invalid ratios read as 1")
}

func TestTenantForNamespace(t *testing.T) {
	c := mustParse(t, fullDocument)
	name, tenant, ok := c.TenantForNamespace(map[string]string{LabelTenant: "team-a"})
	require.True(t, ok)
	assert.Equal(t, "team-a", name)
	assert.Equal(t, "general", tenant.DefaultHostGroup)
	tenant.HostGroups[0] = "changed"
	assert.Equal(t, "general", c.Tenants["team-a"].HostGroups[0], "the tenant is a copy")

	name, tenant, ok = c.TenantForNamespace(map[string]string{LabelTenant: "team-z"})
	assert.False(t, ok)
	assert.Nil(t, tenant)
	assert.Equal(t, "team-z", name, "an unknown tenant is named so callers can report it")

	name, _, ok = c.TenantForNamespace(nil)
	assert.False(t, ok)
	assert.Empty(t, name)
}

func TestIsExemptNamespace(t *testing.T) {
	c := mustParse(t, fullDocument)
	for ns, want := range map[string]bool{
		"kube-system": true, "kube-public": true, "kube-node-lease": true,
		"harbormaster": true, "extra-ns": true, "default": false, "team-a-web": false, "": false,
	} {
		assert.Equal(t, want, c.IsExemptNamespace(ns, "harbormaster"), ns)
	}
	assert.False(t, c.IsExemptNamespace("", ""), "an empty own namespace exempts nothing")
}

func TestOwnedPools(t *testing.T) {
	c := mustParse(t, fullDocument)
	assert.Equal(t, []string{"cache-a", "spark-a"}, c.OwnedPools("team-a", map[string]string{"app": "spark"}))
	assert.Equal(t, []string{"cache-a"}, c.OwnedPools("team-a", map[string]string{"app": "web"}))
	assert.Equal(t, []string{"plain"}, c.OwnedPools("team-b", nil))
	assert.Empty(t, c.OwnedPools("", map[string]string{"app": "spark"}))
}
