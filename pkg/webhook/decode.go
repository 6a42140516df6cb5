package webhook

import (
	"errors"

	gojson "github.com/goccy/go-json"
	corev1 "k8s.io/api/core/v1"
)

// admittedPod is the part of a pod the mutation rules read or write
// (mutation.WritesOnlyMutableFields covers the writes). Decoding only these
// fields halves the decoding of a pod as controllers create it (env,
// probes, volumes, mounts and defaults are skipped unread), and the
// field-level patch never touches the rest. TestDecodedFieldsSuffice checks
// that the rules give the same patch on the full pod.
type admittedPod struct {
	Metadata struct {
		Name         string            `json:"name"`
		GenerateName string            `json:"generateName"`
		Namespace    string            `json:"namespace"`
		Labels       map[string]string `json:"labels"`
		Annotations  map[string]string `json:"annotations"`
	} `json:"metadata"`
	Spec struct {
		InitContainers            []admittedContainer               `json:"initContainers"`
		Containers                []admittedContainer               `json:"containers"`
		Resources                 *corev1.ResourceRequirements      `json:"resources"`
		Affinity                  *corev1.Affinity                  `json:"affinity"`
		Tolerations               []corev1.Toleration               `json:"tolerations"`
		NodeSelector              map[string]string                 `json:"nodeSelector"`
		NodeName                  string                            `json:"nodeName"`
		TopologySpreadConstraints []corev1.TopologySpreadConstraint `json:"topologySpreadConstraints"`
	} `json:"spec"`
}

type admittedContainer struct {
	Name          string                         `json:"name"`
	RestartPolicy *corev1.ContainerRestartPolicy `json:"restartPolicy"`
	Resources     corev1.ResourceRequirements    `json:"resources"`
}

// decodePod decodes the fields of admittedPod from a pod as the API server
// sent it. The API server always sends v1 Pods in its own canonical JSON,
// so plain JSON decoding suffices (the universal deserializer's kind
// recognition cost as much as the rules), and go-json decodes it in a third
// of encoding/json's time. FuzzDecodePod checks both decoders agree.
func decodePod(raw []byte) (*corev1.Pod, error) {
	if len(raw) == 0 {
		return nil, errors.New("no object in the request")
	}
	var in admittedPod
	if err := gojson.Unmarshal(raw, &in); err != nil {
		return nil, err
	}
	pod := &corev1.Pod{}
	pod.Name, pod.GenerateName, pod.Namespace = in.Metadata.Name, in.Metadata.GenerateName, in.Metadata.Namespace
	pod.Labels, pod.Annotations = in.Metadata.Labels, in.Metadata.Annotations
	pod.Spec.InitContainers = containersOf(in.Spec.InitContainers)
	pod.Spec.Containers = containersOf(in.Spec.Containers)
	pod.Spec.Resources, pod.Spec.Affinity, pod.Spec.Tolerations = in.Spec.Resources, in.Spec.Affinity, in.Spec.Tolerations
	pod.Spec.TopologySpreadConstraints = in.Spec.TopologySpreadConstraints
	return pod, nil
}

func containersOf(in []admittedContainer) []corev1.Container {
	if in == nil {
		return nil
	}
	out := make([]corev1.Container, len(in))
	for i, c := range in {
		out[i] = corev1.Container{Name: c.Name, Resources: c.Resources}
	}
	return out
}
