// Package stats has the few statistics Plinth's benchmarks report: medians
// of durations and of the ready line's values.
package stats

import (
	"slices"
	"strconv"
	"strings"
	"time"
)

// Median returns the median of ds (0 for none).
func Median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
}

// MedianValue is the median of values that are all numbers or all Go
// durations, formatted like them; otherwise the distinct values.
func MedianValue(vals []string) string {
	nums := make([]float64, 0, len(vals))
	for _, v := range vals {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			nums = nil
			break
		}
		nums = append(nums, f)
	}
	if nums != nil {
		slices.Sort(nums)
		n := len(nums)
		m := nums[n/2]
		if n%2 == 0 {
			m = (nums[n/2-1] + nums[n/2]) / 2
		}
		return strconv.FormatFloat(m, 'f', -1, 64)
	}
	var ds []time.Duration
	for _, v := range vals {
		d, err := time.ParseDuration(v)
		if err != nil {
			ds = nil
			break
		}
		ds = append(ds, d)
	}
	if ds != nil {
		return Median(ds).String()
	}
	seen := slices.Compact(slices.Sorted(slices.Values(vals)))
	return "(not numeric) " + strings.Join(seen, ", ")
}
