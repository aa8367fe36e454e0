package recipe

import (
	"strconv"
	"strings"
)

// locator maps a field occurrence in a text-format file to its line, so
// that semantic errors can point at the line they are about. Keys name the
// occurrence with 0-based indexes, e.g. "cherry_pick[1]" or
// "split_package[0].claim[2].glob[0]".
type locator map[string]int

// locate scans a text-format file that has already been parsed
// successfully, so it only needs to tell field names from values: it
// skips comments and strings and tracks nesting. Fields given in list form
// (cherry_pick: ["a", "b"]) are one occurrence.
func locate(text []byte) locator {
	type frame struct {
		prefix  string         // key of the message field this frame is in
		counts  map[string]int // occurrences of each field name so far
		inList  bool           // inside [ … ] of a field value
		listKey string         // key of the field whose list that is
	}
	loc := make(locator)
	stack := []*frame{{counts: make(map[string]int)}}
	expectValue := false // after ':', the next token is a value
	lastKey := ""
	line := 1
	for i := 0; i < len(text); {
		top := stack[len(stack)-1]
		switch c := text[i]; {
		case c == '\n':
			line++
			i++
		case c == '#':
			for i < len(text) && text[i] != '\n' {
				i++
			}
		case c == '"' || c == '\'':
			for i++; i < len(text) && text[i] != c && text[i] != '\n'; i++ {
				if text[i] == '\\' {
					i++
				}
			}
			i++
			expectValue = false
		case c == ':':
			expectValue = true
			i++
		case c == '{' || c == '<':
			prefix := lastKey
			if top.inList {
				prefix = top.listKey
			}
			stack = append(stack, &frame{prefix: prefix, counts: make(map[string]int)})
			expectValue = false
			i++
		case c == '}' || c == '>':
			if len(stack) > 1 {
				stack = stack[:len(stack)-1]
			}
			i++
		case c == '[':
			if expectValue {
				top.inList, top.listKey = true, lastKey
				expectValue = false
				i++
				break
			}
			// An extension or Any type name: not a field we look up.
			for i < len(text) && text[i] != ']' && text[i] != '\n' {
				i++
			}
		case c == ']':
			top.inList = false
			i++
		case isTokenChar(c):
			start := i
			for i < len(text) && isTokenChar(text[i]) {
				i++
			}
			if expectValue || top.inList {
				expectValue = false
				break
			}
			name := string(text[start:i])
			n := top.counts[name]
			top.counts[name]++
			key := name + "[" + strconv.Itoa(n) + "]"
			if top.prefix != "" {
				key = top.prefix + "." + key
			}
			loc[key] = line
			lastKey = key
		default: // whitespace, ',' and ';'
			i++
		}
	}
	return loc
}

func isTokenChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '_' || c == '.' || c == '-' || c == '+'
}

// line returns the line of the occurrence key, or of the closest enclosing
// occurrence that the file has (a missing name of a split_package yields
// the split_package's line), or 0.
func (l locator) line(key string) int {
	for {
		if n, ok := l[key]; ok {
			return n
		}
		i := strings.LastIndexByte(key, '.')
		if i < 0 {
			return 0
		}
		key = key[:i]
	}
}
