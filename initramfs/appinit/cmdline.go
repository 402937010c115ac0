package appinit

import "strings"

// Cmdline is the kernel command line as key=value pairs; a bare word maps to "".
type Cmdline map[string]string

// ParseCmdline splits a kernel command line, honouring double quotes
// (key="a b").
func ParseCmdline(s string) Cmdline {
	out := Cmdline{}
	var fields []string
	var cur strings.Builder
	inQ := false
	for _, r := range strings.TrimSpace(s) {
		switch {
		case r == '"':
			inQ = !inQ
		case (r == ' ' || r == '\n' || r == '\t') && !inQ:
			if cur.Len() > 0 {
				fields = append(fields, cur.String())
				cur.Reset()
			}
		default:
			cur.WriteRune(r)
		}
	}
	if cur.Len() > 0 {
		fields = append(fields, cur.String())
	}
	for _, f := range fields {
		k, v, _ := strings.Cut(f, "=")
		out[k] = v
	}
	return out
}
