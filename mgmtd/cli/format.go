package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
)

// parseSize reads a size such as "512M", "2G", "1.5GiB", "10g" or "4096"
// into bytes. Units are powers of 1024 whether written K, KB or KiB (as
// qemu-img reads them); a bare number is in units of bare bytes.
func parseSize(s string, bare int64) (int64, error) {
	t := strings.TrimSpace(s)
	i := strings.IndexFunc(t, func(r rune) bool { return !(unicode.IsDigit(r) || r == '.') })
	num, unit := t, ""
	if i >= 0 {
		num, unit = t[:i], strings.TrimSpace(t[i:])
	}
	if num == "" {
		return 0, fmt.Errorf("size %q: no number", s)
	}
	mult := bare
	switch strings.ToUpper(strings.TrimSuffix(strings.TrimSuffix(strings.ToUpper(unit), "IB"), "B")) {
	case "":
		if unit != "" { // "B"
			mult = 1
		}
	case "K":
		mult = 1 << 10
	case "M":
		mult = 1 << 20
	case "G":
		mult = 1 << 30
	case "T":
		mult = 1 << 40
	default:
		return 0, fmt.Errorf("size %q: unknown unit %q (use K, M, G or T)", s, unit)
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("size %q: bad number", s)
	}
	v := f * float64(mult)
	if v > math.MaxInt64/2 {
		return 0, fmt.Errorf("size %q: too large", s)
	}
	if v != math.Trunc(v) {
		return 0, fmt.Errorf("size %q: not a whole number of bytes", s)
	}
	return int64(v), nil
}

// parseMemoryMiB reads a VM's memory size: "512M", "2G", or a bare number
// of MiB ("512").
func parseMemoryMiB(s string) (int, error) {
	b, err := parseSize(s, 1<<20)
	if err != nil {
		return 0, err
	}
	if b%(1<<20) != 0 {
		return 0, fmt.Errorf("memory %q: not a whole number of MiB", s)
	}
	if b>>20 > math.MaxInt32 {
		return 0, fmt.Errorf("memory %q: too large", s)
	}
	return int(b >> 20), nil
}

// humanBytes writes a size with binary units: "512 B", "1.5 GiB".
func humanBytes[T int64 | uint64 | int](n T) string {
	v := float64(n)
	if v < 1024 {
		return fmt.Sprintf("%d B", int64(n))
	}
	for _, u := range []string{"KiB", "MiB", "GiB", "TiB", "PiB"} {
		v /= 1024
		if v < 1024 || u == "PiB" {
			if v < 10 {
				return fmt.Sprintf("%.1f %s", v, u)
			}
			return fmt.Sprintf("%.0f %s", v, u)
		}
	}
	return ""
}

// humanDuration writes a duration rounded for people: "45s", "3m12s",
// "5h3m", "12d4h".
func humanDuration(d time.Duration) string {
	switch {
	case d < time.Minute:
		return d.Round(time.Second).String()
	case d < time.Hour:
		return strings.TrimSuffix(d.Round(time.Second).String(), "0s")
	case d < 48*time.Hour:
		return strings.TrimSuffix(d.Round(time.Minute).String(), "0s")
	}
	days := int(d / (24 * time.Hour))
	return fmt.Sprintf("%dd%dh", days, int((d-time.Duration(days)*24*time.Hour)/time.Hour))
}

// parseDuration reads a Go duration ("90m", "12h") or a number of days
// ("30d").
func parseDuration(s string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(d)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("duration %q: want e.g. 30d, 12h or 90m", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("duration %q: want e.g. 30d, 12h or 90m", s)
	}
	return v, nil
}

// table writes aligned columns for people.
type table struct{ tw *tabwriter.Writer }

func newTable(w io.Writer, header ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
	if len(header) > 0 {
		t.row(header...)
	}
	return t
}

func (t *table) row(cols ...string) {
	for i, c := range cols {
		if c == "" {
			c = "-"
		}
		// A tab or newline in a value would break the columns.
		c = strings.Map(func(r rune) rune {
			if r == '\t' || r == '\n' || r == '\r' {
				return ' '
			}
			return r
		}, c)
		if i > 0 {
			t.tw.Write([]byte{'\t'})
		}
		io.WriteString(t.tw, c)
	}
	t.tw.Write([]byte{'\n'})
}

func (t *table) flush() error { return t.tw.Flush() }

// writeJSON writes v indented, for scripts.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// localTime writes a time for people, in the local zone; "-" for zero.
func localTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

func optTime(t *time.Time) string {
	if t == nil {
		return "never"
	}
	return localTime(*t)
}

// writeJSONLine writes v as one compact line (JSON Lines).
func writeJSONLine(w io.Writer, v any) error {
	return json.NewEncoder(w).Encode(v)
}
