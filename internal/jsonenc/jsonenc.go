// Package jsonenc appends JSON values byte for byte as encoding/json
// encodes them, without reflection, for the admission hot path.
package jsonenc

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/api/resource"
)

// AppendString appends s quoted s exactly as encoding/json does (HTML characters
// and U+2028/U+2029 escaped); strings that are not valid UTF-8 are left to
// encoding/json, which replaces the invalid bytes.
func AppendString(buf []byte, s string) []byte {
	if !utf8.ValidString(s) {
		quoted, _ := json.Marshal(s) // a string always encodes
		return append(buf, quoted...)
	}
	const hex = "0123456789abcdef"
	buf = append(buf, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x80 {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == '\u2028' || r == '\u2029' {
				buf = append(buf, s[start:i]...)
				buf = append(buf, '\\', 'u', '2', '0', '2', hex[r&0xf])
				start = i + size
			}
			i += size
			continue
		}
		if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
			i++
			continue
		}
		buf = append(buf, s[start:i]...)
		switch c {
		case '"', '\\':
			buf = append(buf, '\\', c)
		case '\n':
			buf = append(buf, '\\', 'n')
		case '\r':
			buf = append(buf, '\\', 'r')
		case '\t':
			buf = append(buf, '\\', 't')
		case '\b':
			buf = append(buf, '\\', 'b')
		case '\f':
			buf = append(buf, '\\', 'f')
		default:
			buf = append(buf, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		i++
		start = i
	}
	buf = append(buf, s[start:]...)
	return append(buf, '"')
}

// AppendFloat appends f as encoding/json encodes a float64. ok is false for
// NaN and infinities, which JSON cannot represent.
func AppendFloat(buf []byte, f float64) (_ []byte, ok bool) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return buf, false
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	buf = strconv.AppendFloat(buf, f, format, -1, 64)
	if format == 'e' {
		// encoding/json writes e-7, not e-07.
		if n := len(buf); n >= 4 && buf[n-4] == 'e' && buf[n-3] == '-' && buf[n-2] == '0' {
			buf[n-2] = buf[n-1]
			buf = buf[:n-1]
		}
	}
	return buf, true
}

// SortedKeys returns m's keys in the order encoding/json writes them,
// appended to buf: callers pass a small array's slice so that the usual
// handful of keys needs no allocation.
func SortedKeys[K ~string, V any](m map[K]V, buf []K) []K {
	for k := range m {
		buf = append(buf, k)
	}
	slices.Sort(buf)
	return buf
}

// AppendQuantity appends q as its MarshalJSON writes it. The canonical
// digits are written straight into buf's spare capacity: String on a copy
// of a quantity allocates on every call.
func AppendQuantity(buf []byte, q *resource.Quantity) []byte {
	buf = slices.Grow(buf, 32)
	buf = append(buf, '"')
	n := len(buf)
	number, suffix := q.CanonicalizeBytes(buf[n:n])
	if len(number) > 0 && &buf[n : n+1][0] == &number[0] {
		buf = buf[:n+len(number)] // written in place
	} else {
		buf = append(buf, number...)
	}
	buf = append(buf, suffix...)
	return append(buf, '"')
}
