package webhook

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"slices"
	"strings"
	"testing/fstest"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
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
	"github.com/harbormaster-dev/harbormaster/pkg/decisionlog"
	"github.com/harbormaster-dev/harbormaster/pkg/policy"
)

// PolicyValidator judges Pods and workload objects with the Rego policies
// and writes one decision-log line per request.
//
// An evaluation that fails (Rego runtime error, timeout) denies requests in
// tenant namespaces, like the Fail failure policy registered for them, and
// admits with a warning elsewhere, like Ignore: the handler's behaviour and
// the registration never disagree.
type PolicyValidator struct {
	Store        *configstore.Store
	Engine       *policy.Engine
	View         ClusterView
	OwnNamespace string
	DecisionLog  *decisionlog.Logger
	Metrics      *Metrics
	Log          logr.Logger
}

var _ admission.Handler = &PolicyValidator{}

// Handle implements admission.Handler.
func (v *PolicyValidator) Handle(ctx context.Context, req admission.Request) admission.Response {
	start := time.Now()
	resp := v.handle(ctx, req)
	observe(v.Metrics, v.Log, WebhookPolicy, req, resp, nil, time.Since(start))
	return resp
}

func (v *PolicyValidator) handle(ctx context.Context, req admission.Request) admission.Response {
	if req.Operation != admissionv1.Create && req.Operation != admissionv1.Update {
		return admission.Allowed("")
	}
	labels, err := v.View.NamespaceLabels(ctx, req.Namespace)
	if err != nil {
		// Without the namespace there is no tenant to judge; the failure
		// policy decides.
		return admission.Errored(http.StatusInternalServerError, fmt.Errorf("reading namespace %s: %w", req.Namespace, err))
	}
	snap := v.Store.Current()
	d, evalErr := v.Engine.Evaluate(ctx, policy.Input{
		Request:      &req.AdmissionRequest,
		Namespace:    policy.Namespace{Name: req.Namespace, Labels: labels},
		Config:       snap.Config,
		OwnNamespace: v.OwnNamespace,
	})

	entry := decisionlog.FromRequest(&req.AdmissionRequest)
	entry.BundleRevision = d.BundleRevision
	entry.ConfigRevision = snap.Revision
	entry.Tenant = d.Tenant
	entry.RuleIDs = d.RuleIDs()
	entry.Messages = d.Messages()
	entry.Latency = d.Latency

	var resp admission.Response
	switch {
	case evalErr != nil && labels[config.LabelTenant] != "":
		entry.Result, entry.Error = decisionlog.ResultDeny, evalErr.Error()
		resp = admission.Denied(fmt.Sprintf("harbormaster policy evaluation failed, tenant requests are refused: %v", evalErr))
	case evalErr != nil:
		entry.Result, entry.Error = decisionlog.ResultAllow, evalErr.Error()
		resp = admission.Allowed("").WithWarnings(fmt.Sprintf("harbormaster policy evaluation failed, admitted without policy checks: %v", evalErr))
	case !d.Allowed:
		entry.Result = decisionlog.Result(d.Result())
		resp = admission.Denied(d.DenialMessage()).WithWarnings(d.AdmissionWarnings()...)
	default:
		entry.Result = decisionlog.Result(d.Result())
		resp = admission.Allowed("").WithWarnings(d.AdmissionWarnings()...)
	}
	if v.DecisionLog != nil {
		v.DecisionLog.Log(entry)
	}
	if evalErr != nil {
		v.Log.Error(evalErr, "Policy evaluation failed", "object", klogRef(req), "tenant", d.Tenant, "bundleRevision", d.BundleRevision)
	}
	return resp
}

// PolicyMetrics are what operators watch about policy bundles.
type PolicyMetrics struct {
	Reloads *prometheus.CounterVec // result=accepted|rejected
	Bundle  *prometheus.GaugeVec   // 1 for the serving revision and its source
}

// NewPolicyMetrics creates and registers the policy bundle metrics.
func NewPolicyMetrics(reg prometheus.Registerer) *PolicyMetrics {
	m := &PolicyMetrics{
		Reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "harbormaster_policy_reloads_total",
			Help: "Policy bundles seen, by result (accepted or rejected).",
		}, []string{"result"}),
		Bundle: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "harbormaster_policy_bundle_info",
			Help: "Set to 1 for the policy bundle revision currently serving, with its source (embedded or configmap).",
		}, []string{"revision", "source"}),
	}
	if reg != nil {
		reg.MustRegister(m.Reloads, m.Bundle)
	}
	return m
}

// policyLoadOptions are used for every bundle: a bundle whose own tests fail
// never serves.
var policyLoadOptions = policy.LoadOptions{RunTests: true}

// PolicyFS turns a policies ConfigMap into a bundle file system: every data
// key ending in .rego is a file. ConfigMap keys cannot hold "/", so the
// bundle is flat; Rego packages, not paths, organise it.
func PolicyFS(cm *corev1.ConfigMap) (fs.FS, error) {
	files := fstest.MapFS{}
	for name, content := range cm.Data {
		if strings.HasSuffix(name, ".rego") {
			files[name] = &fstest.MapFile{Data: []byte(content), Mode: 0o444}
		}
	}
	if len(files) == 0 {
		return nil, errors.New("data: no .rego files")
	}
	return files, nil
}

// policyWatcher serves the policies ConfigMap when it exists and the
// embedded bundle when it does not; a bundle that fails to compile or whose
// tests fail is rejected and the serving one stays.
type policyWatcher struct {
	reader   client.Reader
	key      types.NamespacedName
	engine   *policy.Engine
	embedded *policy.Bundle
	metrics  *PolicyMetrics
	log      logr.Logger
}

func (w *policyWatcher) Reconcile(ctx context.Context, _ reconcile.Request) (reconcile.Result, error) {
	cm := &corev1.ConfigMap{}
	if err := w.reader.Get(ctx, w.key, cm); err != nil {
		if !apierrors.IsNotFound(err) {
			return reconcile.Result{}, err
		}
		if w.engine.Bundle() != w.embedded {
			w.install(w.embedded, "embedded")
			w.log.Info("Policies ConfigMap removed; serving the embedded policies", "configMap", w.key, "revision", w.embedded.Revision())
		}
		return reconcile.Result{}, nil
	}
	files, err := PolicyFS(cm)
	var b *policy.Bundle
	if err == nil {
		b, err = policy.Load(ctx, files, policyLoadOptions)
	}
	if err != nil {
		w.metrics.Reloads.WithLabelValues("rejected").Inc()
		w.log.Error(err, "Rejected policy bundle; the last good one keeps serving", "configMap", w.key, "servingRevision", w.engine.Bundle().Revision())
		return reconcile.Result{}, nil
	}
	if cur := w.engine.Bundle(); cur != nil && cur.Revision() == b.Revision() {
		return reconcile.Result{}, nil
	}
	w.install(b, "configmap")
	w.log.Info("Serving policy bundle from ConfigMap", "configMap", w.key, "revision", b.Revision(), "rules", len(b.Catalog()), "tests", b.TestsRun(), "omittedMembers", b.OmittedMembers())
	return reconcile.Result{}, nil
}

func (w *policyWatcher) install(b *policy.Bundle, source string) {
	w.engine.Swap(b)
	w.metrics.Reloads.WithLabelValues("accepted").Inc()
	w.metrics.Bundle.Reset()
	w.metrics.Bundle.WithLabelValues(b.Revision(), source).Set(1)
}

func setupPolicyWatcher(mgr ctrl.Manager, w *policyWatcher) error {
	isPolicies := predicate.NewPredicateFuncs(func(o client.Object) bool {
		return o.GetNamespace() == w.key.Namespace && o.GetName() == w.key.Name
	})
	return builder.ControllerManagedBy(mgr).
		Named("harbormaster-policies").
		// Every replica needs the live document, leader or not.
		WithOptions(controller.Options{NeedLeaderElection: ptr.To(false)}).
		For(&corev1.ConfigMap{}, builder.WithPredicates(isPolicies)).
		Complete(w)
}

// validatePolicyConfigMap is the write-time check of a policies ConfigMap:
// it must compile and its own tests must pass.
func validatePolicyConfigMap(ctx context.Context, cm *corev1.ConfigMap) error {
	files, err := PolicyFS(cm)
	if err != nil {
		return err
	}
	_, err = policy.Load(ctx, files, policyLoadOptions)
	return err
}

// klogRef names the object of a request for logs.
func klogRef(req admission.Request) string {
	name := req.Name
	if name == "" {
		name = objectGenerateName(req)
	}
	return strings.Join(slices.DeleteFunc([]string{req.Namespace, name}, func(s string) bool { return s == "" }), "/")
}
