package kmod

// match reports whether s matches the fnmatch(3) pattern p (without
// flags), as modules.alias patterns are matched: '*' matches any
// sequence including '/', '?' one byte, and '[…]' a byte class with
// ranges and '!' or '^' negation.
func match(p, s string) bool {
	// Iterative matching with single-star backtracking.
	var starP, starS = -1, 0
	i, j := 0, 0
	for j < len(s) {
		if i < len(p) {
			switch p[i] {
			case '*':
				starP, starS = i, j
				i++
				continue
			case '?':
				i++
				j++
				continue
			case '[':
				if end, ok := matchClass(p[i:], s[j]); end > 0 {
					if ok {
						i += end
						j++
						continue
					}
				} else if s[j] == '[' { // unterminated class: literal '['
					i++
					j++
					continue
				}
			case '\\':
				if i+1 < len(p) && p[i+1] == s[j] {
					i += 2
					j++
					continue
				}
			default:
				if p[i] == s[j] {
					i++
					j++
					continue
				}
			}
		}
		if starP < 0 {
			return false
		}
		starS++
		i, j = starP+1, starS
	}
	for i < len(p) && p[i] == '*' {
		i++
	}
	return i == len(p)
}

// matchClass matches c against the class at the start of p ("[…]"). It
// returns the length of the class (0 if it is not terminated) and
// whether c is in it.
func matchClass(p string, c byte) (int, bool) {
	i := 1
	neg := false
	if i < len(p) && (p[i] == '!' || p[i] == '^') {
		neg = true
		i++
	}
	in := false
	first := true
	for i < len(p) && (first || p[i] != ']') {
		first = false
		lo := p[i]
		hi := lo
		if i+2 < len(p) && p[i+1] == '-' && p[i+2] != ']' {
			hi = p[i+2]
			i += 2
		}
		if lo <= c && c <= hi {
			in = true
		}
		i++
	}
	if i >= len(p) {
		return 0, false
	}
	return i + 1, in != neg
}

// isPattern reports whether s has glob metacharacters.
func isPattern(s string) bool {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '*', '?', '[', '\\':
			return true
		}
	}
	return false
}
