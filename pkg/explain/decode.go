package explain

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/harbormaster-dev/harbormaster/pkg/config"
	"github.com/harbormaster-dev/harbormaster/pkg/configstore"
	"github.com/harbormaster-dev/harbormaster/pkg/policy"
)

// The decoders below read what users keep in files. Every error starts with
// source (the file name) and names the field at fault when there is one.

// DecodeObject decodes the one Kubernetes object of a YAML or JSON file.
// Unknown and duplicate fields are errors, as kubectl's strict validation
// would report them.
func DecodeObject(source string, data []byte) (runtime.Object, error) {
	docs, err := splitDocuments(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	if len(docs) != 1 {
		return nil, fmt.Errorf("%s: holds %d objects; give exactly one", source, len(docs))
	}
	obj, err := strictDecode(docs[0])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	if _, err := reviewedKind(obj); err != nil {
		return nil, fmt.Errorf("%s: kind %s is not reviewed by Harbormaster (%s)", source, obj.GetObjectKind().GroupVersionKind().Kind, ReviewedKinds)
	}
	return obj, nil
}

// DecodeNamespace decodes a Namespace object.
func DecodeNamespace(source string, data []byte) (policy.Namespace, error) {
	docs, err := splitDocuments(data)
	if err != nil {
		return policy.Namespace{}, fmt.Errorf("%s: %w", source, err)
	}
	if len(docs) != 1 {
		return policy.Namespace{}, fmt.Errorf("%s: holds %d objects; give exactly one Namespace", source, len(docs))
	}
	obj, err := strictDecode(docs[0])
	if err != nil {
		return policy.Namespace{}, fmt.Errorf("%s: %w", source, err)
	}
	ns, ok := obj.(*corev1.Namespace)
	if !ok {
		return policy.Namespace{}, fmt.Errorf("%s: kind: %s, want Namespace", source, obj.GetObjectKind().GroupVersionKind().Kind)
	}
	if ns.Name == "" {
		return policy.Namespace{}, fmt.Errorf("%s: metadata.name: required", source)
	}
	return policy.Namespace{Name: ns.Name, Labels: ns.Labels}, nil
}

// DecodeLimitRanges decodes LimitRange objects (several documents, or a
// LimitRangeList).
func DecodeLimitRanges(source string, data []byte) ([]corev1.LimitRange, error) {
	docs, err := splitDocuments(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	var out []corev1.LimitRange
	for i, doc := range docs {
		obj, err := strictDecode(doc)
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", source, i+1, err)
		}
		switch o := obj.(type) {
		case *corev1.LimitRange:
			out = append(out, *o)
		case *corev1.LimitRangeList:
			out = append(out, o.Items...)
		default:
			return nil, fmt.Errorf("%s: document %d: kind: %s, want LimitRange", source, i+1, obj.GetObjectKind().GroupVersionKind().Kind)
		}
	}
	return out, nil
}

// ParseConfig reads a HarbormasterConfig document, or a ConfigMap holding
// one under data[config.yaml] (as manifests/ ships it). revision is the
// webhook's revision of the same document.
func ParseConfig(source string, data []byte) (cfg *config.Config, revision string, err error) {
	var head struct {
		Kind string            `json:"kind"`
		Data map[string]string `json:"data"`
	}
	if err := sigsyaml.Unmarshal(data, &head); err != nil {
		return nil, "", fmt.Errorf("%s: %w", source, err)
	}
	document := data
	where := source
	if head.Kind == "ConfigMap" {
		doc, ok := head.Data[config.ConfigMapKey]
		if !ok {
			return nil, "", fmt.Errorf("%s: data[%s]: required in a Harbormaster ConfigMap", source, config.ConfigMapKey)
		}
		document = []byte(doc)
		where = fmt.Sprintf("%s: data[%s]", source, config.ConfigMapKey)
	}
	// The store computes the revision exactly as the webhook does.
	store := configstore.New(logr.Discard(), nil)
	if err := store.Update(document); err != nil {
		return nil, "", fmt.Errorf("%s: %w", where, err)
	}
	snap := store.Current()
	return snap.Config, snap.Revision, nil
}

// strictDecode decodes one document into a typed object of client-go's
// scheme, rejecting unknown and duplicate fields.
func strictDecode(doc []byte) (runtime.Object, error) {
	codecs := serializer.NewCodecFactory(clientgoscheme.Scheme, serializer.EnableStrict)
	obj, _, err := codecs.UniversalDeserializer().Decode(doc, nil, nil)
	if err != nil {
		return nil, err
	}
	return obj, nil
}

// splitDocuments returns the non-empty documents of a YAML stream (a JSON
// file is one document).
func splitDocuments(data []byte) ([][]byte, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var docs [][]byte
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if isBlank(doc) {
			continue
		}
		docs = append(docs, doc)
	}
	if len(docs) == 0 {
		return nil, errors.New("no object in file")
	}
	return docs, nil
}

// isBlank reports whether a document is only whitespace and comments.
func isBlank(doc []byte) bool {
	for _, line := range strings.Split(string(doc), "\n") {
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasPrefix(line, "#") && line != "---" {
			return false
		}
	}
	return true
}
