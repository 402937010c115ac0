package qemutest

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// ImageBudget is the most the image (kernel + initramfs) may weigh: the
// footprint ESXi 3i advertised (DEVELOPERS.md).
const ImageBudget = 32 << 20

// readSizes reads a size report's part<TAB>bytes lines.
func readSizes(path string) (map[string]int64, []string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	sizes := map[string]int64{}
	var order []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		part, v, ok := strings.Cut(sc.Text(), "\t")
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %q: %w", path, sc.Text(), err)
		}
		sizes[part] = n
		order = append(order, part)
	}
	return sizes, order, sc.Err()
}

// grown names the parts bigger than in the baseline, the most grown first.
func grown(now, base map[string]int64, order []string) []string {
	type g struct {
		part  string
		delta int64
	}
	var gs []g
	for _, p := range order {
		if p == "image" || p == "initramfs" {
			continue
		}
		if d := now[p] - base[p]; d > 0 {
			gs = append(gs, g{p, d})
		}
	}
	sort.SliceStable(gs, func(i, j int) bool { return gs[i].delta > gs[j].delta })
	var out []string
	for _, x := range gs {
		out = append(out, fmt.Sprintf("%s +%.2f MiB (%.2f MiB now)", x.part, float64(x.delta)/(1<<20), float64(now[x.part])/(1<<20)))
	}
	return out
}

// TestImageBudget fails when the built image (build/size-report.tsv, made
// by `make image`) is over ImageBudget, naming the parts that grew since
// initramfs/size-baseline.tsv (update the baseline with the report when a
// growth is accepted).
func TestImageBudget(t *testing.T) {
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	now, order, err := readSizes(filepath.Join(root, "build", "size-report.tsv"))
	if err != nil {
		NoKernel(t, "no size report of a built image: %v", err)
	}
	base, _, err := readSizes(filepath.Join(root, "initramfs", "size-baseline.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	img, ok := now["image"]
	if !ok {
		t.Fatal("the size report has no image line")
	}
	g := grown(now, base, order)
	t.Logf("image %.2f MiB of %d MiB (baseline %.2f MiB); grown since the baseline: %v",
		float64(img)/(1<<20), ImageBudget>>20, float64(base["image"])/(1<<20), g)
	if img > ImageBudget {
		t.Errorf("the image is %.2f MiB, over the %d MiB budget by %.2f MiB; grown since initramfs/size-baseline.tsv: %s",
			float64(img)/(1<<20), ImageBudget>>20, float64(img-ImageBudget)/(1<<20), strings.Join(g, ", "))
	}
}

func TestGrownNamesParts(t *testing.T) {
	base := map[string]int64{"kernel": 100, "userland": 200, "payload.sqfs": 300, "image": 600}
	now := map[string]int64{"kernel": 100, "userland": 200 + 3<<20, "payload.sqfs": 300 + 1<<20, "image": 600 + 4<<20}
	got := grown(now, base, []string{"kernel", "userland", "payload.sqfs", "image"})
	if len(got) != 2 || !strings.HasPrefix(got[0], "userland +3.00 MiB") || !strings.HasPrefix(got[1], "payload.sqfs +1.00 MiB") {
		t.Fatalf("grown = %q", got)
	}
}
