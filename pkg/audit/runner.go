package audit

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/harbormaster-dev/harbormaster/pkg/webhook"
)

// listPageSize bounds each list call, so a large cluster is read in pages
// rather than one response held by the API server.
const listPageSize = 500

// Runner reads the cluster, judges every pod and writes the reports. Run
// audits once; Start audits periodically until its context ends and is a
// controller-runtime Runnable that needs leader election, so only one
// webhook replica writes reports.
type Runner struct {
	Client  kubernetes.Interface
	Reports dynamic.Interface
	Source  Source
	// OwnNamespace is the webhook's namespace, never audited.
	OwnNamespace string
	// Namespace limits the audit to one namespace; "" audits all.
	Namespace string
	// MaxResultsPerReport caps each report's results (0: the default).
	MaxResultsPerReport int
	// Interval is the pause between periodic runs (Start); RetryDelay the
	// pause after a failed one (0: DefaultRetryDelay).
	Interval   time.Duration
	RetryDelay time.Duration
	Log        logr.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

var (
	_ manager.Runnable               = &Runner{}
	_ manager.LeaderElectionRunnable = &Runner{}
)

// NewRunner builds a Runner with clients for restConfig.
func NewRunner(restConfig *rest.Config, source Source, ownNamespace string, interval time.Duration, log logr.Logger) (*Runner, error) {
	client, err := kubernetes.NewForConfig(restConfig)
	if err != nil {
		return nil, err
	}
	reports, err := dynamic.NewForConfig(restConfig)
	if err != nil {
		return nil, err
	}
	return &Runner{Client: client, Reports: reports, Source: source, OwnNamespace: ownNamespace, Interval: interval, Log: log}, nil
}

// NeedLeaderElection implements manager.LeaderElectionRunnable: two
// replicas writing the same reports would only race.
func (r *Runner) NeedLeaderElection() bool { return true }

// DefaultRetryDelay is the pause after a failed periodic run: a webhook
// replica that has not loaded its configuration yet, or a brief API outage,
// should not postpone the audit a whole interval.
const DefaultRetryDelay = 30 * time.Second

// Start audits now and then every Interval until ctx ends. A failed run is
// logged and retried after RetryDelay (at most Interval); it never stops
// the manager.
func (r *Runner) Start(ctx context.Context) error {
	if r.Interval <= 0 {
		return errors.New("audit: Interval must be positive for periodic audits")
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
		next := r.Interval
		if err := r.Run(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			next = r.RetryDelay
			if next <= 0 {
				next = DefaultRetryDelay
			}
			next = min(next, r.Interval)
			r.Log.Error(err, "Audit failed; retrying", "after", next)
		}
		timer.Reset(next)
	}
}

// Run audits once: it judges every pod and writes the reports.
func (r *Runner) Run(ctx context.Context) error {
	start := r.now()
	reports, err := r.Collect(ctx)
	if err != nil {
		return err
	}
	if err := r.Write(ctx, reports); err != nil {
		return err
	}
	var total Summary
	pods := 0
	for _, rep := range reports {
		total = total.Add(rep.Summary)
		pods += rep.Pods
	}
	bundle := ""
	if len(reports) > 0 {
		bundle = reports[0].BundleRevision
	}
	r.Log.Info("Audit written", "namespaces", len(reports), "pods", pods, "fail", total.Fail, "warn", total.Warn,
		"error", total.Error, "pass", total.Pass, "bundleRevision", bundle, "took", r.now().Sub(start))
	return nil
}

// Collect reads pods, namespaces and the snapshot and judges the pods. It
// writes nothing (the CLI's --dry-run prints its result).
func (r *Runner) Collect(ctx context.Context) ([]NamespaceReport, error) {
	snap, err := r.Source.Snapshot(ctx)
	if err != nil {
		return nil, fmt.Errorf("audit snapshot: %w", err)
	}
	nsLabels, err := r.namespaceLabels(ctx)
	if err != nil {
		return nil, err
	}
	pods, err := r.pods(ctx)
	if err != nil {
		return nil, err
	}
	return Evaluate(ctx, Input{
		Pods: pods, NamespaceLabels: nsLabels, Config: snap.Config, ConfigRevision: snap.ConfigRevision,
		Bundle: snap.Bundle, OwnNamespace: r.OwnNamespace, MaxResultsPerReport: r.MaxResultsPerReport, Now: r.now(),
	})
}

// Write creates or updates each namespace's report and deletes the
// reports of namespaces (within Namespace's scope) that have no audited
// pod any more.
func (r *Runner) Write(ctx context.Context, reports []NamespaceReport) error {
	keep := map[string]bool{}
	for _, rep := range reports {
		if err := r.apply(ctx, PolicyReportOf(rep)); err != nil {
			return err
		}
		keep[rep.Namespace] = true
	}
	existing, err := r.Reports.Resource(ReportGVR()).Namespace(r.Namespace).List(ctx, metav1.ListOptions{
		LabelSelector: labels.SelectorFromSet(labels.Set{LabelManagedBy: ManagedByValue}).String(),
		FieldSelector: fields.OneTermEqualSelector("metadata.name", ReportName).String(),
	})
	if err != nil {
		return reportsError("listing", err)
	}
	for _, item := range existing.Items {
		if keep[item.GetNamespace()] {
			continue
		}
		uid := item.GetUID()
		err := r.Reports.Resource(ReportGVR()).Namespace(item.GetNamespace()).Delete(ctx, item.GetName(), metav1.DeleteOptions{
			Preconditions: &metav1.Preconditions{UID: &uid},
		})
		if err != nil && !apierrors.IsNotFound(err) {
			return reportsError("deleting", err)
		}
		r.Log.V(2).Info("Deleted the report of a namespace without audited pods", "namespace", item.GetNamespace())
	}
	return nil
}

// apply creates the report or replaces the existing one's content.
func (r *Runner) apply(ctx context.Context, report *PolicyReport) error {
	obj, err := report.Unstructured()
	if err != nil {
		return err
	}
	client := r.Reports.Resource(ReportGVR()).Namespace(report.Namespace)
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		current, err := client.Get(ctx, report.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			_, err = client.Create(ctx, obj, metav1.CreateOptions{})
			return reportsError("creating", err)
		}
		if err != nil {
			return reportsError("reading", err)
		}
		next := obj.DeepCopy()
		next.SetResourceVersion(current.GetResourceVersion())
		mergeMetadata(next, current)
		_, err = client.Update(ctx, next, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) {
			return err // retried
		}
		return reportsError("updating", err)
	})
}

// mergeMetadata keeps labels and annotations others put on the report.
func mergeMetadata(next, current *unstructured.Unstructured) {
	next.SetLabels(overlay(current.GetLabels(), next.GetLabels()))
	next.SetAnnotations(overlay(current.GetAnnotations(), next.GetAnnotations()))
}

func overlay(base, top map[string]string) map[string]string {
	out := make(map[string]string, len(base)+len(top))
	for k, v := range base {
		out[k] = v
	}
	for k, v := range top {
		out[k] = v
	}
	return out
}

func reportsError(verb string, err error) error {
	if err == nil || apierrors.IsConflict(err) {
		return err
	}
	if apierrors.IsNotFound(err) && verb != "deleting" {
		return fmt.Errorf("%s PolicyReports: %w (is the %s.%s CRD installed? apply manifests/base/crds)", verb, err, ReportResource, ReportGroup)
	}
	return fmt.Errorf("%s PolicyReports: %w", verb, err)
}

func (r *Runner) namespaceLabels(ctx context.Context) (map[string]map[string]string, error) {
	out := map[string]map[string]string{}
	if r.Namespace != "" {
		ns, err := r.Client.CoreV1().Namespaces().Get(ctx, r.Namespace, metav1.GetOptions{})
		if err != nil {
			return nil, fmt.Errorf("reading namespace %s: %w", r.Namespace, err)
		}
		out[ns.Name] = ns.Labels
		return out, nil
	}
	opts := metav1.ListOptions{Limit: listPageSize}
	for {
		list, err := r.Client.CoreV1().Namespaces().List(ctx, opts)
		if err != nil {
			return nil, fmt.Errorf("listing namespaces: %w", err)
		}
		for _, ns := range list.Items {
			out[ns.Name] = ns.Labels
		}
		if opts.Continue = list.Continue; opts.Continue == "" {
			return out, nil
		}
	}
}

func (r *Runner) pods(ctx context.Context) ([]corev1.Pod, error) {
	var pods []corev1.Pod
	opts := metav1.ListOptions{Limit: listPageSize}
	for {
		list, err := r.Client.CoreV1().Pods(r.Namespace).List(ctx, opts)
		if err != nil {
			return nil, fmt.Errorf("listing pods: %w", err)
		}
		pods = append(pods, list.Items...)
		if opts.Continue = list.Continue; opts.Continue == "" {
			return pods, nil
		}
	}
}

func (r *Runner) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// AddPeriodic runs a periodic audit inside the webhook server, judging pods
// with the configuration and policies the server is serving. The server
// must have been built with webhook.Options.LeaderElection, so that one
// replica only writes the reports.
func AddPeriodic(srv *webhook.Server, restConfig *rest.Config, ownNamespace string, interval time.Duration, maxResultsPerReport int, log logr.Logger) error {
	if interval <= 0 {
		return errors.New("audit: the interval of a periodic audit must be positive")
	}
	runner, err := NewRunner(restConfig, ServingSource{Store: srv.Store, Engine: srv.Engine}, ownNamespace, interval, log)
	if err != nil {
		return err
	}
	runner.MaxResultsPerReport = maxResultsPerReport
	return srv.Manager.Add(runner)
}
