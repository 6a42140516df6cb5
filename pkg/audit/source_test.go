package audit

import (
	"testing"

	"github.com/go-logr/logr"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/harbormaster-dev/harbormaster/pkg/config"
	"github.com/harbormaster-dev/harbormaster/pkg/configstore"
	"github.com/harbormaster-dev/harbormaster/pkg/policy"
	"github.com/harbormaster-dev/harbormaster/policies"
)

func configMap(name string, data map[string]string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ownNamespace, Name: name}, Data: data}
}

const onePolicy = `package harbormaster.demo

# METADATA
# title: Demo
# custom:
#   id: HM-DEMO-001
#   enforcement: deny
deny contains {"id": "HM-DEMO-001", "msg": "demo", "field": ""} if input.request.name == "demo"
`

func TestClusterSource(t *testing.T) {
	embedded := embeddedBundle(t)
	validConfig := configMap("harbormaster-config", map[string]string{config.ConfigMapKey: testConfig})
	tests := []struct {
		name         string
		objects      []runtime.Object
		wantErr      string
		wantRevision string // of the bundle; "" means the embedded one
	}{
		{name: "no configuration", wantErr: "reading configuration ConfigMap harbormaster-system/harbormaster-config"},
		{
			name:    "invalid configuration",
			objects: []runtime.Object{configMap("harbormaster-config", map[string]string{config.ConfigMapKey: testConfig + "overcommit: {default: {cpu: 0.5}}\n"})},
			wantErr: "ConfigMap harbormaster-system/harbormaster-config data[config.yaml]: overcommit.default.cpu",
		},
		{name: "embedded policies", objects: []runtime.Object{validConfig}},
		{
			name:         "policies ConfigMap replaces the embedded ones",
			objects:      []runtime.Object{validConfig, configMap("harbormaster-policies", map[string]string{"demo.rego": onePolicy})},
			wantRevision: "demo",
		},
		{
			name:    "rejected policies ConfigMap",
			objects: []runtime.Object{validConfig, configMap("harbormaster-policies", map[string]string{"demo.rego": "package harbormaster.demo\n\ndeny contains"})},
			wantErr: "policies ConfigMap harbormaster-system/harbormaster-policies is rejected",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := ClusterSource{
				Client: fake.NewClientset(tc.objects...), Namespace: ownNamespace,
				ConfigMapName: "harbormaster-config", PolicyConfigMapName: "harbormaster-policies", Embedded: policies.FS,
			}
			snap, err := src.Snapshot(t.Context())
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Contains(t, snap.Config.Tenants, "team-a")
			assert.Len(t, snap.ConfigRevision, 12)
			if tc.wantRevision == "" {
				assert.Equal(t, embedded.Revision(), snap.Bundle.Revision())
			} else {
				_, ok := snap.Bundle.Rule("HM-DEMO-001")
				assert.True(t, ok)
			}
		})
	}
}

func TestServingSource(t *testing.T) {
	store := configstore.New(logr.Discard(), nil)
	engine := policy.NewEngine(embeddedBundle(t), policy.EngineOptions{})
	src := ServingSource{Store: store, Engine: engine}
	_, err := src.Snapshot(t.Context())
	require.ErrorContains(t, err, "no configuration loaded yet")

	require.NoError(t, store.Update([]byte(testConfig)))
	snap, err := src.Snapshot(t.Context())
	require.NoError(t, err)
	assert.Same(t, store.Current().Config, snap.Config)
	assert.Equal(t, store.Current().Revision, snap.ConfigRevision)
	assert.Same(t, engine.Bundle(), snap.Bundle)
}
