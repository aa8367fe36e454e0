package torrent

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strconv"
)

// encode appends the bencoding of v to b. v is a string, []byte, int,
// int64, []any or map[string]any; dictionary keys are written sorted by
// their raw bytes, as BEP 3 requires, which also makes the output (and
// so the info hash) a function of the value alone.
func encode(b []byte, v any) ([]byte, error) {
	switch v := v.(type) {
	case string:
		b = strconv.AppendInt(b, int64(len(v)), 10)
		b = append(b, ':')
		return append(b, v...), nil
	case []byte:
		b = strconv.AppendInt(b, int64(len(v)), 10)
		b = append(b, ':')
		return append(b, v...), nil
	case int:
		return encode(b, int64(v))
	case int64:
		b = append(b, 'i')
		b = strconv.AppendInt(b, v, 10)
		return append(b, 'e'), nil
	case []any:
		b = append(b, 'l')
		for _, e := range v {
			var err error
			if b, err = encode(b, e); err != nil {
				return nil, err
			}
		}
		return append(b, 'e'), nil
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys) // Go compares strings bytewise
		b = append(b, 'd')
		for _, k := range keys {
			b, _ = encode(b, k)
			var err error
			if b, err = encode(b, v[k]); err != nil {
				return nil, err
			}
		}
		return append(b, 'e'), nil
	}
	return nil, fmt.Errorf("bencode: unsupported type %T", v)
}

// maxDepth bounds the nesting of lists and dictionaries [decode]
// accepts, so a hostile file cannot exhaust the stack.
const maxDepth = 64

var errTruncated = errors.New("truncated")

// decode parses one bencoded value at the start of b and returns it and
// the rest of b. Strings become string, integers int64, lists []any and
// dictionaries map[string]any. It is strict: integers without leading
// zeros or "-0", dictionary keys in strictly ascending order, so that a
// value has one encoding and re-encoding a decoded info dictionary gives
// the bytes its hash was computed over.
func decode(b []byte, depth int) (any, []byte, error) {
	if depth > maxDepth {
		return nil, nil, fmt.Errorf("nested deeper than %d", maxDepth)
	}
	if len(b) == 0 {
		return nil, nil, errTruncated
	}
	switch c := b[0]; {
	case c == 'i':
		end := bytes.IndexByte(b, 'e')
		if end < 0 {
			return nil, nil, errTruncated
		}
		s := string(b[1:end])
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || strconv.FormatInt(n, 10) != s {
			return nil, nil, fmt.Errorf("bad integer %q", s)
		}
		return n, b[end+1:], nil
	case c >= '0' && c <= '9':
		colon := bytes.IndexByte(b, ':')
		if colon < 0 {
			return nil, nil, errTruncated
		}
		s := string(b[:colon])
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || strconv.FormatInt(n, 10) != s {
			return nil, nil, fmt.Errorf("bad string length %q", s)
		}
		rest := b[colon+1:]
		if n > int64(len(rest)) {
			return nil, nil, errTruncated
		}
		return string(rest[:n]), rest[n:], nil
	case c == 'l':
		l := []any{}
		b = b[1:]
		for {
			if len(b) == 0 {
				return nil, nil, errTruncated
			}
			if b[0] == 'e' {
				return l, b[1:], nil
			}
			v, rest, err := decode(b, depth+1)
			if err != nil {
				return nil, nil, err
			}
			l = append(l, v)
			b = rest
		}
	case c == 'd':
		d := map[string]any{}
		b = b[1:]
		prev, first := "", true
		for {
			if len(b) == 0 {
				return nil, nil, errTruncated
			}
			if b[0] == 'e' {
				return d, b[1:], nil
			}
			k, rest, err := decode(b, depth+1)
			if err != nil {
				return nil, nil, err
			}
			key, ok := k.(string)
			if !ok {
				return nil, nil, fmt.Errorf("dictionary key is %T, not a string", k)
			}
			if !first && key <= prev {
				return nil, nil, fmt.Errorf("dictionary key %q out of order", key)
			}
			prev, first = key, false
			v, rest, err := decode(rest, depth+1)
			if err != nil {
				return nil, nil, fmt.Errorf("key %q: %w", key, err)
			}
			d[key] = v
			b = rest
		}
	default:
		return nil, nil, fmt.Errorf("unexpected byte %q", c)
	}
}
