package appinit

import (
	"bufio"
	"io"
	"strconv"
	"strings"
)

// kernelMarks are the kernel log lines that bound the boot phases before
// Plinth's init runs: initramfs unpacking and the start of userspace.
var kernelMarks = map[string]string{
	"Trying to unpack rootfs image as initramfs": "unpack_start",
	"Freeing initrd memory":                      "unpack_end",
	"Run /init as init process":                  "userspace",
}

// KernelTimeline reads /dev/kmsg-format records ("prio,seq,usec,flags;text")
// and returns, for each mark found, its time in milliseconds since the kernel
// started.
func KernelTimeline(r io.Reader) map[string]int64 {
	out := map[string]int64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 8192), 64*1024)
	for sc.Scan() {
		head, text, ok := strings.Cut(sc.Text(), ";")
		if !ok {
			continue
		}
		f := strings.Split(head, ",")
		if len(f) < 3 {
			continue
		}
		usec, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil {
			continue
		}
		for prefix, key := range kernelMarks {
			if _, seen := out[key]; !seen && strings.HasPrefix(text, prefix) {
				out[key] = usec / 1000
			}
		}
	}
	return out
}
