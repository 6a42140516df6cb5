package policy

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"

	"github.com/harbormaster-dev/harbormaster/pkg/config"
)

func TestBuildDocument(t *testing.T) {
	two := int64(2)
	tests := []struct {
		name       string
		ns         Namespace
		own        string
		cfg        *config.Config
		wantNS     string
		wantTenant *Tenant
		wantExempt bool
	}{
		{
			name:   "no tenant label",
			ns:     Namespace{Name: tenantNS},
			cfg:    testConfig(),
			wantNS: tenantNS,
		},
		{
			name:   "known tenant",
			ns:     Namespace{Name: tenantNS, Labels: tenantLabels()},
			cfg:    testConfig(),
			wantNS: tenantNS,
			wantTenant: &Tenant{
				Name: "team-a", Known: true, HostGroups: []string{"general", "batch"}, DefaultHostGroup: "general",
				MaxGPUsPerPod: &two, AllowedGPUModels: []string{"NVIDIA-A100-SXM4-80GB"}, AllowedRegistries: []string{"registry.example.com/team-a/"},
			},
		},
		{
			name:       "tenant without caps has empty lists, null max",
			ns:         Namespace{Name: "b", Labels: map[string]string{config.LabelTenant: "team-b"}},
			cfg:        testConfig(),
			wantNS:     "b",
			wantTenant: &Tenant{Name: "team-b", Known: true, HostGroups: []string{"gpu"}, AllowedGPUModels: []string{}, AllowedRegistries: []string{}},
		},
		{
			name:       "unknown tenant",
			ns:         Namespace{Name: tenantNS, Labels: map[string]string{config.LabelTenant: "ghost"}},
			cfg:        testConfig(),
			wantNS:     tenantNS,
			wantTenant: &Tenant{Name: "ghost", HostGroups: []string{}, AllowedGPUModels: []string{}, AllowedRegistries: []string{}},
		},
		{
			name:       "configured exempt namespace",
			ns:         Namespace{Name: "monitoring"},
			cfg:        testConfig(),
			wantNS:     "monitoring",
			wantExempt: true,
		},
		{
			name:       "own namespace, default config, name from the request",
			own:        tenantNS,
			wantNS:     tenantNS,
			wantExempt: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc, err := BuildDocument(Input{Request: podRequest(t, realisticPod()), Namespace: tt.ns, Config: tt.cfg, OwnNamespace: tt.own})
			require.NoError(t, err)
			require.Equal(t, tt.wantNS, doc.Namespace.Name)
			require.NotNil(t, doc.Namespace.Labels)
			require.Equal(t, tt.wantTenant, doc.Tenant)
			require.Equal(t, tt.wantExempt, doc.ExemptNamespace)
			require.NotNil(t, doc.Config)
		})
	}
}

func TestBuildDocumentCopiesTenant(t *testing.T) {
	cfg := testConfig()
	doc, err := BuildDocument(Input{Request: podRequest(t, realisticPod()), Namespace: Namespace{Labels: tenantLabels()}, Config: cfg})
	require.NoError(t, err)
	doc.Tenant.AllowedRegistries[0] = "mutated"
	*doc.Tenant.MaxGPUsPerPod = 99
	require.Equal(t, "registry.example.com/team-a/", cfg.Tenants["team-a"].AllowedRegistries[0])
	require.EqualValues(t, 2, *cfg.Tenants["team-a"].MaxGPUsPerPod)
}

// The engine's fast conversion must produce exactly the JSON contract.
func TestDocumentValueMatchesJSON(t *testing.T) {
	cfg := testConfig()
	doc, err := BuildDocument(tenantInput(t, realisticPod(), cfg))
	require.NoError(t, err)

	raw, err := json.Marshal(doc)
	require.NoError(t, err)
	want, err := ast.ValueFromReader(bytes.NewReader(raw))
	require.NoError(t, err)

	ct, err := newConfigTerms(cfg)
	require.NoError(t, err)
	got, err := doc.value(ct, newSharedKeys(), inputOptions{facts: true})
	require.NoError(t, err)
	// The value adds input.facts (see requestFacts) to the JSON contract.
	require.NotNil(t, got.(ast.Object).Get(ast.StringTerm("facts")))
	withoutFacts := ast.NewObject()
	got.(ast.Object).Foreach(func(k, v *ast.Term) {
		if !k.Equal(ast.StringTerm("facts")) {
			withoutFacts.Insert(k, v)
		}
	})
	require.Zero(t, want.Compare(withoutFacts), "got %v\nwant %v", withoutFacts, want)

	var shape map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(raw, &shape))
	for _, key := range []string{"request", "namespace", "tenant", "exempt_namespace", "config", "config_index"} {
		require.Contains(t, shape, key)
	}
	require.Contains(t, string(shape["tenant"]), `"maxGPUsPerPod":2`)
	require.Contains(t, string(shape["request"]), `"object":{"kind":"Pod"`)
}

func TestConfigIndex(t *testing.T) {
	cfg := testConfig()
	cfg.HostGroups["gpu"] = config.HostGroup{NodeSelector: config.NodeSelector{
		MatchLabels: map[string]string{config.LabelHostGroup: "gpu"},
		MatchExpressions: []corev1.NodeSelectorRequirement{
			{Key: "nvidia.com/gpu.present", Operator: corev1.NodeSelectorOpIn, Values: []string{"true", "yes", "true"}},
			{Key: "node.example.com/tier", Operator: corev1.NodeSelectorOpNotIn, Values: []string{"edge"}},
			{Key: "node.example.com/tier", Operator: corev1.NodeSelectorOpNotIn, Values: []string{"edge"}},
		},
	}}
	cfg.HostGroups["any-gpu"] = config.HostGroup{NodeSelector: config.NodeSelector{
		MatchLabels: map[string]string{"nvidia.com/gpu.present": "true"},
		MatchExpressions: []corev1.NodeSelectorRequirement{
			{Key: "nvidia.com/gpu.present", Operator: corev1.NodeSelectorOpIn, Values: []string{"true"}},
		},
	}}
	cfg.DedicatedPools = map[string]config.DedicatedPool{
		"spark-a": {Tenant: "team-a", App: "spark"}, "db-a": {Tenant: "team-a"}, "gpu-b": {Tenant: "team-b"},
	}
	idx := newConfigIndex(cfg)

	require.Equal(t, map[string][]string{"team-a": {"db-a", "spark-a"}, "team-b": {"gpu-b"}}, idx.PoolsByTenant)
	require.Equal(t, map[string]map[string][]string{
		config.LabelHostGroup:    {"general": {"general"}, "batch": {"batch"}, "gpu": {"gpu"}},
		"nvidia.com/gpu.present": {"true": {"any-gpu", "gpu"}, "yes": {"gpu"}},
	}, idx.HostGroupsByLabel, "In values only, NotIn never selects")
	require.Equal(t, []Requirement{
		{Key: config.LabelHostGroup, Operator: "In", Values: []string{"gpu"}},
		{Key: "nvidia.com/gpu.present", Operator: "In", Values: []string{"true", "yes"}},
		{Key: "node.example.com/tier", Operator: "NotIn", Values: []string{"edge"}},
	}, idx.HostGroupRequirements["gpu"], "values sorted and deduplicated, repeats dropped")

	empty := newConfigIndex(config.Default())
	raw, err := json.Marshal(empty)
	require.NoError(t, err)
	require.JSONEq(t, `{"pools_by_tenant": {}, "host_groups_by_label": {}, "host_group_requirements": {}}`, string(raw),
		"objects, never null, so that policies can look into them")
}
