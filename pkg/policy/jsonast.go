package policy

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"unicode/utf8"
	"unsafe"

	"github.com/open-policy-agent/opa/v1/ast"
)

// maxJSONDepth bounds nesting (objects and arrays) like encoding/json
// does, so a hostile document cannot exhaust the stack.
const maxJSONDepth = 10000

// jsonValue converts one JSON document straight to an AST value, without
// the map[string]any that json.Unmarshal followed by ast.InterfaceToValue
// would build and throw away. The result is what that pair produces with
// json.Decoder.UseNumber: numbers keep their literal text, invalid UTF-8
// in strings becomes U+FFFD, a repeated object key keeps its last value.
func jsonValue(data []byte) (ast.Value, error) { return jsonValueKeys(data, nil) }

// jsonValueKeys is jsonValue sharing the terms of strings found in keys,
// which the caller never modifies: a pod repeats "name", "image",
// "resources"... dozens of times, as keys and as values.
func jsonValueKeys(data []byte, keys map[string]*ast.Term) (ast.Value, error) {
	return objectValue(data, keys, nil)
}

// objectValue is jsonValueKeys for a Kubernetes object, leaving out the
// members omit names, skipped unconverted (see omit.go).
func objectValue(data []byte, keys map[string]*ast.Term, omit *omissions) (ast.Value, error) {
	return newJSONParser(keys).convert(data, omit)
}

func newJSONParser(keys map[string]*ast.Term) *jsonParser {
	return &jsonParser{keys: keys, pairs: make([][2]*ast.Term, 0, 32), elems: make([]*ast.Term, 0, 32)}
}

// convert converts one document. A parser converts the documents of one
// request one after the other, sharing its blocks of terms and strings.
func (p *jsonParser) convert(data []byte, omit *omissions) (ast.Value, error) {
	p.data, p.pos = data, 0
	v, err := p.value(0, omit)
	if err != nil {
		return nil, err
	}
	if p.skipSpace(); p.pos < len(p.data) {
		return nil, p.errorf("unexpected %q after top-level value", p.data[p.pos])
	}
	return v, nil
}

// jsonParser copies out of data only the strings it converts and does not
// share (keys), into blocks of its own: no copy of the whole document, most
// of which a reviewed object's omissions skip, and no allocation per string.
type jsonParser struct {
	data []byte
	pos  int
	// strs is the block copyString appends to; its bytes are never written
	// again once a string refers to them.
	strs []byte
	keys map[string]*ast.Term
	// slab hands out terms in blocks: one allocation per termBlock terms.
	slab []ast.Term
	// elemSlab holds arrays' elements in blocks likewise.
	elemSlab []*ast.Term
	// pairs and elems are stacks shared by nested objects and arrays:
	// ast.NewObject copies its pairs, and arrays get an exact-size copy.
	pairs [][2]*ast.Term
	elems []*ast.Term
}

const (
	termBlock   = 64
	stringBlock = 1024
)

// copyString returns raw as a string of its own, in the parser's current
// block of strings. A block is only appended to, and each string covers
// bytes written before it was made, so strings never see a later write
// (as with strings.Builder).
func (p *jsonParser) copyString(raw []byte) string {
	if len(raw) == 0 {
		return ""
	}
	if len(raw) > stringBlock/4 {
		return string(raw)
	}
	if cap(p.strs)-len(p.strs) < len(raw) {
		p.strs = make([]byte, 0, stringBlock)
	}
	start := len(p.strs)
	p.strs = append(p.strs, raw...)
	return unsafe.String(&p.strs[start], len(raw))
}

// sharedTerm is the shared term of the string str read, if there is one.
// The lookup with string(raw) allocates nothing.
func (p *jsonParser) sharedTerm(raw []byte, decoded string) (*ast.Term, bool) {
	if raw != nil {
		t, ok := p.keys[string(raw)]
		return t, ok
	}
	t, ok := p.keys[decoded]
	return t, ok
}

// stringOf is the string str read, copied out of the document when it is
// a slice of it.
func (p *jsonParser) stringOf(raw []byte, decoded string) string {
	if raw != nil {
		return p.copyString(raw)
	}
	return decoded
}

func (p *jsonParser) term(v ast.Value) *ast.Term {
	if len(p.slab) == 0 {
		p.slab = make([]ast.Term, termBlock)
	}
	t := &p.slab[0]
	p.slab = p.slab[1:]
	t.Value = v
	return t
}

// elemsOf copies elems into the element block.
func (p *jsonParser) elemsOf(elems []*ast.Term) []*ast.Term {
	n := len(elems)
	if n > termBlock {
		return slices.Clone(elems)
	}
	if len(p.elemSlab) < n {
		p.elemSlab = make([]*ast.Term, termBlock)
	}
	out := p.elemSlab[:n:n]
	p.elemSlab = p.elemSlab[n:]
	copy(out, elems)
	return out
}

func (p *jsonParser) errorf(format string, args ...any) error {
	return fmt.Errorf("invalid JSON at offset %d: %s", p.pos, fmt.Sprintf(format, args...))
}

func (p *jsonParser) skipSpace() {
	for p.pos < len(p.data) {
		switch p.data[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

// value converts the next value; omit is the node of the omissions tree
// for it (nil: keep everything), whose members an object leaves out and
// an array's elements share.
func (p *jsonParser) value(depth int, omit *omissions) (ast.Value, error) {
	p.skipSpace()
	if p.pos >= len(p.data) {
		return nil, p.errorf("unexpected end of input")
	}
	switch c := p.data[p.pos]; {
	case (c == '{' || c == '[') && depth >= maxJSONDepth:
		return nil, p.errorf("nested too deeply")
	case c == '{':
		return p.object(depth, omit)
	case c == '[':
		return p.array(depth, omit)
	case c == '"':
		raw, decoded, err := p.str()
		if err != nil {
			return nil, err
		}
		// A shared value ("v1", "Exists", "IfNotPresent", ...) costs no
		// allocation.
		if t, ok := p.sharedTerm(raw, decoded); ok {
			return t.Value, nil
		}
		return ast.String(p.stringOf(raw, decoded)), nil
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	default:
		return p.literal()
	}
}

func (p *jsonParser) object(depth int, omit *omissions) (ast.Value, error) {
	p.pos++ // {
	base := len(p.pairs)
	defer func() { p.pairs = p.pairs[:base] }()
	p.skipSpace()
	if p.pos < len(p.data) && p.data[p.pos] == '}' {
		p.pos++
		return ast.NewObject(), nil
	}
	for {
		p.skipSpace()
		if p.pos >= len(p.data) || p.data[p.pos] != '"' {
			return nil, p.errorf("expected object key")
		}
		raw, decoded, err := p.str()
		if err != nil {
			return nil, err
		}
		if p.skipSpace(); p.pos >= len(p.data) || p.data[p.pos] != ':' {
			return nil, p.errorf("expected ':' after object key")
		}
		p.pos++
		// An omitted member costs no key term.
		if member := omit.childOf(raw, decoded); member != nil && member.omit {
			if err := p.skipValue(); err != nil {
				return nil, err
			}
		} else {
			key, shared := p.sharedTerm(raw, decoded)
			if !shared {
				key = p.term(ast.String(p.stringOf(raw, decoded)))
			}
			v, err := p.value(depth+1, member)
			if err != nil {
				return nil, err
			}
			p.pairs = append(p.pairs, [2]*ast.Term{key, p.term(v)})
		}
		p.skipSpace()
		if p.pos >= len(p.data) {
			return nil, p.errorf("unterminated object")
		}
		switch p.data[p.pos] {
		case ',':
			p.pos++
		case '}':
			p.pos++
			return ast.NewObject(lastPerKey(p.pairs[base:])...), nil
		default:
			return nil, p.errorf("expected ',' or '}' in object")
		}
	}
}

// lastPerKey drops the pairs whose key comes again later, as json.Unmarshal
// into a map does (ast.NewObject would keep both). Keys are strings.
func lastPerKey(pairs [][2]*ast.Term) [][2]*ast.Term {
	dup := false
	if len(pairs) <= 16 {
		// The usual case: small objects, compared without a map.
		for i := 1; i < len(pairs) && !dup; i++ {
			for j := range i {
				if pairs[i][0].Value.(ast.String) == pairs[j][0].Value.(ast.String) {
					dup = true
					break
				}
			}
		}
	} else {
		seen := make(map[ast.String]struct{}, len(pairs))
		for _, kv := range pairs {
			k := kv[0].Value.(ast.String)
			if _, ok := seen[k]; ok {
				dup = true
				break
			}
			seen[k] = struct{}{}
		}
	}
	if !dup {
		return pairs
	}
	last := make(map[ast.String]int, len(pairs))
	for i, kv := range pairs {
		last[kv[0].Value.(ast.String)] = i
	}
	out := make([][2]*ast.Term, 0, len(last))
	for i, kv := range pairs {
		if last[kv[0].Value.(ast.String)] == i {
			out = append(out, kv)
		}
	}
	return out
}

func (p *jsonParser) array(depth int, omit *omissions) (ast.Value, error) {
	p.pos++ // [
	base := len(p.elems)
	defer func() { p.elems = p.elems[:base] }()
	p.skipSpace()
	if p.pos < len(p.data) && p.data[p.pos] == ']' {
		p.pos++
		return ast.NewArray(), nil
	}
	if depth == 0 {
		// The tree is of an object's members: a document that is an
		// array keeps everything.
		omit = nil
	}
	for {
		v, err := p.value(depth+1, omit)
		if err != nil {
			return nil, err
		}
		p.elems = append(p.elems, p.term(v))
		p.skipSpace()
		if p.pos >= len(p.data) {
			return nil, p.errorf("unterminated array")
		}
		switch p.data[p.pos] {
		case ',':
			p.pos++
		case ']':
			p.pos++
			// The array keeps its slice, so it gets its own: a capped piece
			// of a block, as the stack is reused.
			return ast.NewArray(p.elemsOf(p.elems[base:])...), nil
		default:
			return nil, p.errorf("expected ',' or ']' in array")
		}
	}
}

// skipValue moves past one value without converting it. It checks only
// that strings and brackets are closed: the objects it skips in were
// decoded from JSON already (the admission request) or encoded by Go.
func (p *jsonParser) skipValue() error {
	p.skipSpace()
	depth := 0
	for p.pos < len(p.data) {
		switch p.data[p.pos] {
		case '"':
			if err := p.skipString(); err != nil {
				return err
			}
			if depth == 0 {
				return nil
			}
			continue
		case '{', '[':
			if depth++; depth > maxJSONDepth {
				return p.errorf("exceeded max depth")
			}
		case '}', ']':
			if depth == 0 {
				return nil // a scalar ended with its enclosing object
			}
			if depth--; depth == 0 {
				p.pos++
				return nil
			}
		case ',':
			if depth == 0 {
				return nil
			}
		}
		p.pos++
	}
	if depth > 0 {
		return p.errorf("unterminated value")
	}
	return nil
}

func (p *jsonParser) skipString() error {
	p.pos++ // "
	for p.pos < len(p.data) {
		switch p.data[p.pos] {
		case '\\':
			p.pos += 2
			continue
		case '"':
			p.pos++
			return nil
		}
		p.pos++
	}
	return p.errorf("unterminated string")
}

// str reads a string: raw is its bytes in the document when they are its
// value (no escapes, valid UTF-8: Kubernetes JSON is almost never
// escaped), else nil with decoded the value encoding/json decodes, for its
// exact escape and invalid-UTF-8 handling.
func (p *jsonParser) str() (raw []byte, decoded string, err error) {
	start := p.pos // the opening quote
	p.pos++
	plain := true
	for p.pos < len(p.data) {
		c := p.data[p.pos]
		switch {
		case c == '"':
			p.pos++
			if raw := p.data[start+1 : p.pos-1]; plain && utf8.Valid(raw) {
				return raw[:len(raw):len(raw)], "", nil
			}
			// Decoded into a variable of this branch only: its address
			// escapes, which would cost every call an allocation.
			var s string
			if err := json.Unmarshal(p.data[start:p.pos], &s); err != nil {
				return nil, "", fmt.Errorf("invalid JSON string at offset %d: %w", start, err)
			}
			return nil, s, nil
		case c == '\\':
			plain = false
			p.pos += 2
		case c < 0x20:
			return nil, "", p.errorf("control character in string")
		default:
			p.pos++
		}
	}
	return nil, "", errors.New("invalid JSON: unterminated string")
}

// number checks the JSON number grammar and keeps the literal, like
// json.Number.
func (p *jsonParser) number() (ast.Value, error) {
	start := p.pos
	if p.data[p.pos] == '-' {
		p.pos++
	}
	switch {
	case p.pos < len(p.data) && p.data[p.pos] == '0':
		p.pos++
	case p.digits() == 0:
		return nil, p.errorf("invalid number")
	}
	if p.pos < len(p.data) && p.data[p.pos] == '.' {
		p.pos++
		if p.digits() == 0 {
			return nil, p.errorf("invalid number")
		}
	}
	if p.pos < len(p.data) && (p.data[p.pos] == 'e' || p.data[p.pos] == 'E') {
		p.pos++
		if p.pos < len(p.data) && (p.data[p.pos] == '+' || p.data[p.pos] == '-') {
			p.pos++
		}
		if p.digits() == 0 {
			return nil, p.errorf("invalid number")
		}
	}
	return ast.Number(p.copyString(p.data[start:p.pos])), nil
}

func (p *jsonParser) digits() int {
	n := 0
	for p.pos < len(p.data) && p.data[p.pos] >= '0' && p.data[p.pos] <= '9' {
		p.pos++
		n++
	}
	return n
}

func (p *jsonParser) literal() (ast.Value, error) {
	rest := p.data[p.pos:]
	switch {
	case hasPrefix(rest, "true"):
		p.pos += 4
		return ast.Boolean(true), nil
	case hasPrefix(rest, "false"):
		p.pos += 5
		return ast.Boolean(false), nil
	case hasPrefix(rest, "null"):
		p.pos += 4
		return ast.Null{}, nil
	}
	return nil, p.errorf("unexpected %q", p.data[p.pos])
}

func hasPrefix(b []byte, s string) bool { return len(b) >= len(s) && string(b[:len(s)]) == s }

// newSharedKeys returns terms for the object keys of admission requests
// and pod specs and for common string values, for jsonValueKeys. An Engine
// builds it once and only reads it afterwards.
func newSharedKeys() map[string]*ast.Term {
	names := []string{
		// AdmissionRequest
		"uid", "kind", "group", "version", "resource", "subResource", "requestKind", "requestResource",
		"requestSubResource", "name", "namespace", "operation", "userInfo", "username", "groups", "extra",
		"object", "oldObject", "dryRun", "options",
		// Object metadata
		"apiVersion", "metadata", "generateName", "resourceVersion", "generation", "creationTimestamp",
		"labels", "annotations", "ownerReferences", "controller", "blockOwnerDeletion", "finalizers",
		// Workloads
		"spec", "status", "template", "jobTemplate", "selector", "matchLabels", "matchExpressions",
		"replicas", "strategy", "schedule",
		// Pod spec
		"containers", "initContainers", "ephemeralContainers", "volumes", "nodeName", "nodeSelector",
		"affinity", "nodeAffinity", "podAffinity", "podAntiAffinity",
		"requiredDuringSchedulingIgnoredDuringExecution", "preferredDuringSchedulingIgnoredDuringExecution",
		"nodeSelectorTerms", "matchFields", "preference", "weight", "podAffinityTerm", "labelSelector",
		"topologyKey", "key", "operator", "values", "value", "tolerations", "effect", "tolerationSeconds",
		"serviceAccountName", "serviceAccount", "securityContext", "restartPolicy", "dnsPolicy",
		"schedulerName", "priority", "priorityClassName", "enableServiceLinks", "preemptionPolicy",
		"terminationGracePeriodSeconds", "resources", "limits", "requests", "cpu", "memory",
		// Containers
		"image", "imagePullPolicy", "command", "args", "env", "valueFrom", "secretKeyRef",
		"configMapKeyRef", "fieldRef", "fieldPath", "ports", "containerPort", "protocol", "volumeMounts",
		"mountPath", "readOnly", "livenessProbe", "readinessProbe", "startupProbe", "httpGet", "path",
		"port", "periodSeconds", "initialDelaySeconds", "timeoutSeconds", "successThreshold",
		"failureThreshold", "terminationMessagePath", "terminationMessagePolicy",
		// Volumes
		"configMap", "secret", "secretName", "emptyDir", "projected", "sources", "serviceAccountToken",
		"expirationSeconds", "items", "defaultMode", "downwardAPI", "persistentVolumeClaim", "claimName",
		// Common values (the API server's defaults, well-known keys)
		"", "v1", "Pod", "apps/v1", "ReplicaSet", "Always", "IfNotPresent", "Never", "ClusterFirst", "default-scheduler",
		"PreemptLowerPriority", "/dev/termination-log", "File", "TCP", "Exists", "Equal", "In", "NotIn",
		"NoSchedule", "NoExecute", "node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable",
		"kube-root-ca.crt", "ca.crt", "token", "metadata.namespace", "metadata.name",
		"/var/run/secrets/kubernetes.io/serviceaccount", "kubernetes.io/hostname", "app.kubernetes.io/name",
		"app.kubernetes.io/instance", "pod-template-hash", "harbormaster.io/host-group", "harbormaster.io/dedicated",
		"harbormaster.io/tenant", "default",
	}
	keys := make(map[string]*ast.Term, len(names))
	for _, n := range names {
		keys[n] = ast.StringTerm(n)
	}
	return keys
}
