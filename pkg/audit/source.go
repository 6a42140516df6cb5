package audit

import (
	"context"
	"errors"
	"fmt"
	"io/fs"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/harbormaster-dev/harbormaster/pkg/config"
	"github.com/harbormaster-dev/harbormaster/pkg/configstore"
	"github.com/harbormaster-dev/harbormaster/pkg/policy"
	"github.com/harbormaster-dev/harbormaster/pkg/webhook"
)

// Snapshot is the configuration and policies one run judges with.
type Snapshot struct {
	Config         *config.Config
	ConfigRevision string
	Bundle         *policy.Bundle
}

// Source provides the snapshot at the start of every run.
type Source interface {
	Snapshot(ctx context.Context) (Snapshot, error)
}

// ServingSource audits with what this webhook replica serves: its live
// configuration store and policy engine. It is the source of the periodic
// audit inside cmd/webhook.
type ServingSource struct {
	Store  *configstore.Store
	Engine *policy.Engine
}

// Snapshot implements Source.
func (s ServingSource) Snapshot(context.Context) (Snapshot, error) {
	if !s.Store.Loaded() {
		// Defaults confine no tenant: reports judged by them would mislead.
		return Snapshot{}, errors.New("no configuration loaded yet")
	}
	b := s.Engine.Bundle()
	if b == nil {
		return Snapshot{}, policy.ErrNoBundle
	}
	snap := s.Store.Current()
	return Snapshot{Config: snap.Config, ConfigRevision: snap.Revision, Bundle: b}, nil
}

// ClusterSource reads the configuration and policies ConfigMaps at every
// run and resolves them as the webhook does: the policies ConfigMap, when
// it exists, replaces the embedded bundle. It is the source of the
// harbormaster audit command, which runs outside the webhook.
type ClusterSource struct {
	Client              kubernetes.Interface
	Namespace           string // the webhook's namespace
	ConfigMapName       string
	PolicyConfigMapName string
	// Embedded is the bundle served when the policies ConfigMap does not
	// exist (policies.FS).
	Embedded fs.FS
}

// Snapshot implements Source.
func (s ClusterSource) Snapshot(ctx context.Context) (Snapshot, error) {
	cms := s.Client.CoreV1().ConfigMaps(s.Namespace)
	cm, err := cms.Get(ctx, s.ConfigMapName, metav1.GetOptions{})
	if err != nil {
		return Snapshot{}, fmt.Errorf("reading configuration ConfigMap %s/%s: %w", s.Namespace, s.ConfigMapName, err)
	}
	// A throwaway store: it validates and computes the revision as the webhook
	// does; its errors are returned, so it need not log.
	store := configstore.New(logr.Discard(), nil)
	if err := store.Update([]byte(cm.Data[config.ConfigMapKey])); err != nil {
		return Snapshot{}, fmt.Errorf("ConfigMap %s/%s data[%s]: %w", s.Namespace, s.ConfigMapName, config.ConfigMapKey, err)
	}
	snap := store.Current()

	// The webhook loads every bundle with its tests; so does the audit.
	opts := policy.LoadOptions{RunTests: true}
	var b *policy.Bundle
	pcm, err := cms.Get(ctx, s.PolicyConfigMapName, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		if s.Embedded == nil {
			return Snapshot{}, errors.New("no embedded policy bundle")
		}
		if b, err = policy.Load(ctx, s.Embedded, opts); err != nil {
			return Snapshot{}, fmt.Errorf("embedded policies: %w", err)
		}
	case err != nil:
		return Snapshot{}, fmt.Errorf("reading policies ConfigMap %s/%s: %w", s.Namespace, s.PolicyConfigMapName, err)
	default:
		b, err = loadPolicyConfigMap(ctx, pcm, opts)
		if err != nil {
			// The webhook keeps serving its last good bundle, which only it
			// knows: auditing with a guess would mislead.
			return Snapshot{}, fmt.Errorf("policies ConfigMap %s/%s is rejected by the webhook too: %w", s.Namespace, s.PolicyConfigMapName, err)
		}
	}
	return Snapshot{Config: snap.Config, ConfigRevision: snap.Revision, Bundle: b}, nil
}

func loadPolicyConfigMap(ctx context.Context, cm *corev1.ConfigMap, opts policy.LoadOptions) (*policy.Bundle, error) {
	files, err := webhook.PolicyFS(cm)
	if err != nil {
		return nil, err
	}
	return policy.Load(ctx, files, opts)
}
