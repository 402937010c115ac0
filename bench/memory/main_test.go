package main

import "testing"

func TestParseSumsSamples(t *testing.T) {
	m := parse("# HELP x\nplinth_host_memory_total_bytes 4e+09\nplinth_vm_memory_rss_bytes{vm=\"a\"} 100\nplinth_vm_memory_rss_bytes{vm=\"b\"} 50\n")
	if m["plinth_host_memory_total_bytes"] != 4e9 || m["plinth_vm_memory_rss_bytes"] != 150 {
		t.Fatalf("parse = %v", m)
	}
}
