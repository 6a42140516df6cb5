package webhook

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/harbormaster-dev/harbormaster/pkg/config"
	"github.com/harbormaster-dev/harbormaster/pkg/configstore"
)

// ConfigValidator rejects a bad Harbormaster ConfigMap or policies ConfigMap
// at write time, with every invalid field (or failing Rego file and test)
// named. The watchers still guard against documents that arrive while this
// webhook is not installed.
type ConfigValidator struct {
	Key       types.NamespacedName
	PolicyKey types.NamespacedName
	Metrics   *Metrics
	Decoder   admission.Decoder
	Log       logr.Logger
}

var _ admission.Handler = &ConfigValidator{}

// Handle implements admission.Handler.
func (v *ConfigValidator) Handle(ctx context.Context, req admission.Request) admission.Response {
	start := time.Now()
	resp := v.handle(ctx, req)
	observe(v.Metrics, v.Log, WebhookConfig, req, resp, nil, time.Since(start))
	return resp
}

func (v *ConfigValidator) handle(ctx context.Context, req admission.Request) admission.Response {
	key := types.NamespacedName{Namespace: req.Namespace, Name: req.Name}
	if (key != v.Key && key != v.PolicyKey) || req.Operation == admissionv1.Delete {
		return admission.Allowed("")
	}
	cm := &corev1.ConfigMap{}
	if err := v.Decoder.Decode(req, cm); err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}
	if key == v.PolicyKey {
		if err := validatePolicyConfigMap(ctx, cm); err != nil {
			return admission.Denied(fmt.Sprintf("policy bundle rejected: %v", err))
		}
		return admission.Allowed("")
	}
	if _, err := config.Parse([]byte(cm.Data[config.ConfigMapKey])); err != nil {
		return admission.Denied(fmt.Sprintf("data[%s]: %v", config.ConfigMapKey, err))
	}
	return admission.Allowed("")
}

// configWatcher feeds the ConfigMap to the store whenever it changes.
type configWatcher struct {
	reader client.Reader
	key    types.NamespacedName
	store  *configstore.Store
	log    logr.Logger
}

func (w *configWatcher) Reconcile(ctx context.Context, _ reconcile.Request) (reconcile.Result, error) {
	cm := &corev1.ConfigMap{}
	if err := w.reader.Get(ctx, w.key, cm); err != nil {
		if apierrors.IsNotFound(err) {
			w.log.Info("Configuration ConfigMap not found; keeping the last good configuration", "configMap", w.key, "servingRevision", w.store.Current().Revision)
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, err
	}
	// A rejected document is logged and counted by the store; retrying the
	// same bytes cannot help, so no error is returned to the queue.
	_ = w.store.Update([]byte(cm.Data[config.ConfigMapKey]))
	return reconcile.Result{}, nil
}

func setupConfigWatcher(mgr ctrl.Manager, key types.NamespacedName, store *configstore.Store, log logr.Logger) error {
	isConfig := predicate.NewPredicateFuncs(func(o client.Object) bool {
		return o.GetNamespace() == key.Namespace && o.GetName() == key.Name
	})
	return builder.ControllerManagedBy(mgr).
		Named("harbormaster-config").
		// Every replica needs the live document, leader or not.
		WithOptions(controller.Options{NeedLeaderElection: ptr.To(false)}).
		For(&corev1.ConfigMap{}, builder.WithPredicates(isConfig)).
		Complete(&configWatcher{reader: mgr.GetClient(), key: key, store: store, log: log})
}

// cachedView reads namespaces and LimitRanges from the informer cache and
// falls back to a live read when a namespace is not cached yet (created a
// moment before its first pod).
type cachedView struct {
	cache client.Reader
	live  client.Reader
}

func (v cachedView) NamespaceLabels(ctx context.Context, name string) (map[string]string, error) {
	ns := &corev1.Namespace{}
	err := v.cache.Get(ctx, types.NamespacedName{Name: name}, ns)
	if apierrors.IsNotFound(err) {
		err = v.live.Get(ctx, types.NamespacedName{Name: name}, ns)
	}
	if err != nil {
		return nil, err
	}
	return ns.Labels, nil
}

func (v cachedView) LimitRanges(ctx context.Context, namespace string) ([]corev1.LimitRange, error) {
	list := &corev1.LimitRangeList{}
	if err := v.cache.List(ctx, list, client.InNamespace(namespace)); err != nil {
		return nil, err
	}
	return list.Items, nil
}
