package policy

import (
	"context"
	"encoding/json"
	"os"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/require"
	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/harbormaster-dev/harbormaster/pkg/config"
)

const tenantNS = "team-a-dev"

func loadDir(tb testing.TB, dir string, opts LoadOptions) *Bundle {
	tb.Helper()
	b, err := Load(context.Background(), os.DirFS(dir), opts)
	require.NoError(tb, err)
	return b
}

func loadMap(tb testing.TB, files map[string]string) (*Bundle, error) {
	tb.Helper()
	fsys := fstest.MapFS{}
	for name, src := range files {
		fsys[name] = &fstest.MapFile{Data: []byte(src)}
	}
	return Load(context.Background(), fsys, LoadOptions{RunTests: true})
}

// testConfig has one fully configured tenant, team-a.
func testConfig() *config.Config {
	maxGPUs := int64(2)
	c := &config.Config{
		APIVersion: config.APIVersion,
		Kind:       config.Kind,
		HostGroups: map[string]config.HostGroup{
			"general": {NodeSelector: config.NodeSelector{MatchLabels: map[string]string{config.LabelHostGroup: "general"}}},
			"batch":   {NodeSelector: config.NodeSelector{MatchLabels: map[string]string{config.LabelHostGroup: "batch"}}},
			"gpu":     {NodeSelector: config.NodeSelector{MatchLabels: map[string]string{config.LabelHostGroup: "gpu"}}},
		},
		Tenants: map[string]config.Tenant{
			"team-a": {
				HostGroups:        []string{"general", "batch"},
				DefaultHostGroup:  "general",
				MaxGPUsPerPod:     &maxGPUs,
				AllowedGPUModels:  []string{"NVIDIA-A100-SXM4-80GB"},
				AllowedRegistries: []string{"registry.example.com/team-a/"},
			},
			"team-b": {HostGroups: []string{"gpu"}},
		},
		ExemptNamespaces: []string{"monitoring"},
	}
	c.SetDefaults()
	return c
}

func tenantLabels() map[string]string { return map[string]string{config.LabelTenant: "team-a"} }

// realisticPod is a typical tenant web pod: two containers, an init
// container, env, probes, volumes, resources. It violates nothing.
func realisticPod() *corev1.Pod {
	res := corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m"), corev1.ResourceMemory: resource.MustParse("256Mi")},
		Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("512Mi")},
	}
	probe := &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(8080)}}, PeriodSeconds: 10}
	return &corev1.Pod{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: "web-7d9f8b6c5-",
			Namespace:    tenantNS,
			Labels: map[string]string{
				"app.kubernetes.io/name": "web", "app.kubernetes.io/instance": "web-prod",
				"pod-template-hash": "7d9f8b6c5", config.LabelHostGroup: "general",
			},
			Annotations: map[string]string{"prometheus.io/scrape": "true", "prometheus.io/port": "9090"},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-7d9f8b6c5", UID: "0b7e7c4e-6f55-4a4e-9a53-8f1f1d1f0e01",
			}},
		},
		Spec: corev1.PodSpec{
			ServiceAccountName: "web",
			InitContainers: []corev1.Container{{
				Name: "migrate", Image: "registry.example.com/team-a/web:1.42.0", Command: []string{"/app/migrate"}, Resources: res,
			}},
			Containers: []corev1.Container{
				{
					Name: "web", Image: "registry.example.com/team-a/web:1.42.0",
					Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
					Env: []corev1.EnvVar{
						{Name: "LOG_LEVEL", Value: "info"},
						{Name: "DB_PASSWORD", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "db"}, Key: "password"}}},
					},
					Resources: res, LivenessProbe: probe, ReadinessProbe: probe,
					VolumeMounts: []corev1.VolumeMount{{Name: "config", MountPath: "/etc/web"}, {Name: "tmp", MountPath: "/tmp"}},
				},
				{
					Name: "metrics", Image: "registry.example.com/team-a/exporter@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
					Ports: []corev1.ContainerPort{{Name: "metrics", ContainerPort: 9090}}, Resources: res,
				},
			},
			Volumes: []corev1.Volume{
				{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "web"}}}},
				{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
			},
			Tolerations: []corev1.Toleration{{Key: "node.kubernetes.io/not-ready", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute}},
			Affinity: &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{
				Weight: 50, PodAffinityTerm: corev1.PodAffinityTerm{TopologyKey: "kubernetes.io/hostname", LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/name": "web"}}},
			}}}},
		},
	}
}

func podRequest(tb testing.TB, pod *corev1.Pod) *admissionv1.AdmissionRequest {
	tb.Helper()
	raw, err := json.Marshal(pod)
	require.NoError(tb, err)
	return &admissionv1.AdmissionRequest{
		UID:       "4f0b7a3e-1d2c-4b5a-8e9f-0a1b2c3d4e5f",
		Kind:      metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
		Resource:  metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
		Namespace: pod.Namespace,
		Name:      pod.Name,
		Operation: admissionv1.Create,
		UserInfo: authenticationv1.UserInfo{
			Username: "system:serviceaccount:kube-system:replicaset-controller",
			Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"},
		},
		Object: runtime.RawExtension{Raw: raw},
	}
}

func tenantInput(tb testing.TB, pod *corev1.Pod, cfg *config.Config) Input {
	tb.Helper()
	return Input{
		Request:   podRequest(tb, pod),
		Namespace: Namespace{Name: pod.Namespace, Labels: tenantLabels()},
		Config:    cfg,
	}
}
