// Package apibench measures mgmtd's GET /api/v1/vms with many defined VMs
// over HTTPS on loopback with keep-alive, against the real vmkernel and
// mgmtd binaries in their own processes: an open-loop load at a fixed rate
// (latency counted from when each request was due, so a stall is not
// hidden by the generator waiting for it), then a closed loop for the
// highest rate. The peer is the same listing straight from vmkernel over
// its unix socket (no TLS, no auth, no proxy), measured in the same run.
package apibench

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/auth"
	"github.com/plinth/plinth/client"
	"github.com/plinth/plinth/vmkernel/inventory"
)

// Options say what to measure.
type Options struct {
	VMs      int           // VMs defined (1000)
	Rate     int           // open-loop requests per second (500)
	Duration time.Duration // of each open-loop and closed-loop run
	Runs     int           // repetitions; the report gives medians
	Workers  int           // connections (and goroutines) of each loop
	// Cold is how many single requests right after a change each path
	// gets (and as many right after those); 0 means 21.
	Cold int
	// BinDir holds the vmkernel and mgmtd binaries; empty: build them.
	BinDir string
	// Identity asks for uncompressed answers (as curl without --compressed
	// does); by default the client takes gzip, as Go's, browsers and
	// Python's requests do.
	Identity bool
	Logf     func(format string, args ...any)
}

// Load is one open-loop run's figures.
type Load struct {
	Sent, Errors int
	P50, P99     time.Duration
	Max          time.Duration
	// Achieved is the rate of completed requests.
	Achieved float64
}

// Result holds every run.
type Result struct {
	Options
	// Bytes is the size of one listing's answer.
	Bytes         int
	Mgmtd, Direct []Load
	// MaxRPS is the closed loop's completed requests per second.
	MaxRPS, DirectMaxRPS []float64
	// Cold and Warm are single requests through mgmtd: Cold right after a
	// change to one VM (vmkernel's list cache is stale and the answer is
	// encoded afresh), Warm the next one (answered from the cache).
	// DirectCold and DirectWarm are the same from vmkernel directly.
	Cold, Warm, DirectCold, DirectWarm []time.Duration
}

// Run starts the real vmkernel and mgmtd binaries (built here unless
// o.BinDir has them) as their own processes, with o.VMs VMs defined in
// vmkernel's inventory, and measures from this process.
func Run(ctx context.Context, o Options) (_ *Result, err error) {
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	base, err := os.MkdirTemp("", "plinth-apibench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(base)
	if err := os.Chmod(base, 0o711); err != nil { // the VMs' users pass through to their run directories
		return nil, err
	}
	bins := o.BinDir
	if bins == "" {
		bins = filepath.Join(base, "bin")
		for _, cmd := range []string{"vmkernel/cmd/vmkernel", "mgmtd/cmd/mgmtd"} {
			out, err := exec.CommandContext(ctx, "go", "build", "-o", bins+"/", "github.com/plinth/plinth/"+cmd).CombinedOutput()
			if err != nil {
				return nil, fmt.Errorf("building %s: %v\n%s", cmd, err, out)
			}
		}
	}

	vmkState := filepath.Join(base, "vmkernel")
	inv, err := inventory.Open(filepath.Join(vmkState, "vms"))
	if err != nil {
		return nil, err
	}
	for i := range o.VMs {
		spec := api.VMSpec{Name: fmt.Sprintf("vm%04d", i), MemoryMiB: 256}
		if err := inv.Create(&spec); err != nil {
			return nil, fmt.Errorf("defining VM %d: %w", i, err)
		}
	}
	o.Logf("defined %d VMs", o.VMs)
	state := filepath.Join(base, "mgmtd")
	const password = "Bench-pass-1"
	if err := auth.SetPassword(state, api.RootUser, password); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	sock := filepath.Join(base, "vmkernel.sock")
	var logs bytes.Buffer
	var logMu sync.Mutex
	logw := writerFunc(func(p []byte) (int, error) { logMu.Lock(); defer logMu.Unlock(); return logs.Write(p) })
	for _, args := range [][]string{
		{filepath.Join(bins, "vmkernel"), "-socket", sock, "-state", vmkState, "-run", filepath.Join(base, "run"),
			"-socket-gid", strconv.Itoa(os.Getgid()), "-accel", api.AccelTCG},
		{filepath.Join(bins, "mgmtd"), "-listen", "127.0.0.1:" + strconv.Itoa(port), "-state", state, "-vmkernel", sock},
	} {
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Stderr = logw
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		defer func() {
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(5 * time.Second):
				syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			}
			if err != nil {
				logMu.Lock()
				err = fmt.Errorf("%w\nlogs (tail):\n%s", err, tail(logs.String(), 2048))
				logMu.Unlock()
			}
		}()
	}
	mgmtdURL := "https://127.0.0.1:" + strconv.Itoa(port)
	token, err := login(ctx, mgmtdURL, password)
	if err != nil {
		return nil, err
	}

	httpsTr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
		MaxIdleConnsPerHost: o.Workers, MaxConnsPerHost: o.Workers, DisableCompression: o.Identity}
	unixTr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
		MaxIdleConnsPerHost: o.Workers, MaxConnsPerHost: o.Workers, DisableCompression: o.Identity,
	}
	viaMgmtd := requester(&http.Client{Transport: httpsTr, Timeout: 10 * time.Second}, mgmtdURL+api.MgmtdVMsPath, token)
	direct := requester(&http.Client{Transport: unixTr, Timeout: 10 * time.Second}, "http://vmkernel"+api.VMKernelVMsPath, "")

	res := &Result{Options: o}
	if res.Bytes, err = viaMgmtd(ctx); err != nil { // warm up, and the answer's size
		return nil, err
	}
	if _, err := direct(ctx); err != nil {
		return nil, err
	}
	for i := range o.Runs {
		for _, side := range []struct {
			name string
			do   func(context.Context) (int, error)
			out  *[]Load
			max  *[]float64
		}{{"mgmtd", viaMgmtd, &res.Mgmtd, &res.MaxRPS}, {"vmkernel", direct, &res.Direct, &res.DirectMaxRPS}} {
			l := openLoop(ctx, side.do, o.Rate, o.Duration, o.Workers)
			*side.out = append(*side.out, l)
			rps := closedLoop(ctx, side.do, o.Duration, o.Workers)
			*side.max = append(*side.max, rps)
			o.Logf("run %d/%d %s: %d req at %d/s: p50 %v p99 %v max %v, %d errors; closed loop %.0f req/s",
				i+1, o.Runs, side.name, l.Sent, o.Rate, l.P50, l.P99, l.Max, l.Errors, rps)
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	if err := res.coldAndWarm(ctx, sock, viaMgmtd, direct); err != nil {
		return nil, err
	}
	return res, nil
}

// coldAndWarm times single listings right after a change to one VM (its
// memory, through vmkernel's API) and again right after that, through
// mgmtd and directly.
func (r *Result) coldAndWarm(ctx context.Context, sock string, viaMgmtd, direct func(context.Context) (int, error)) error {
	vmk, err := client.NewVMKernel(sock, client.WithTimeout(10*time.Second))
	if err != nil {
		return err
	}
	vms, err := vmk.ListVMs(ctx)
	if err != nil || len(vms) == 0 {
		return fmt.Errorf("cold listing: no VMs to change (%v)", err)
	}
	timed := func(do func(context.Context) (int, error)) (time.Duration, error) {
		t0 := time.Now()
		_, err := do(ctx)
		return time.Since(t0), err
	}
	n := r.Options.Cold
	if n <= 0 {
		n = 21
	}
	for i := range 2 * n {
		spec := vms[i%len(vms)].Spec
		spec.MemoryMiB += 1 // a change vmkernel takes: the inventory's generation moves
		if i%2 == 1 {
			spec.MemoryMiB -= 2
		}
		if _, err := vmk.UpdateVM(ctx, spec); err != nil {
			return fmt.Errorf("cold listing: changing VM %s: %w", spec.Name, err)
		}
		vms[i%len(vms)].Spec = spec
		do, cold, warm := viaMgmtd, &r.Cold, &r.Warm
		if i%2 == 1 {
			do, cold, warm = direct, &r.DirectCold, &r.DirectWarm
		}
		c, err := timed(do)
		if err != nil {
			return fmt.Errorf("cold listing: %w", err)
		}
		w, err := timed(do)
		if err != nil {
			return fmt.Errorf("warm listing: %w", err)
		}
		*cold, *warm = append(*cold, c), append(*warm, w)
	}
	r.Logf("single listings: mgmtd cold %v warm %v; vmkernel cold %v warm %v", medianOf(r.Cold), medianOf(r.Warm), medianOf(r.DirectCold), medianOf(r.DirectWarm))
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// login waits for mgmtd (and vmkernel behind it) to answer, then logs in.
func login(ctx context.Context, base, password string) (string, error) {
	c, err := client.New(base, client.WithInsecureSkipVerify(), client.WithTimeout(5*time.Second))
	if err != nil {
		return "", err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, herr := c.Health(ctx)
		if herr == nil {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return "", fmt.Errorf("mgmtd and vmkernel did not answer within 30 s: %w", herr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	s, err := c.Login(ctx, api.RootUser, password)
	return s.Token, err
}

// requester makes one GET and reads the whole answer.
func requester(hc *http.Client, url, token string) func(context.Context) (int, error) {
	return func(ctx context.Context) (int, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return 0, err
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := hc.Do(req)
		if err != nil {
			return 0, err
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil {
			return 0, err
		}
		if resp.StatusCode != http.StatusOK {
			return 0, fmt.Errorf("status %d", resp.StatusCode)
		}
		return int(n), nil
	}
}

// openLoop sends rate requests a second for d from workers goroutines;
// each latency runs from the moment the request was due.
func openLoop(ctx context.Context, do func(context.Context) (int, error), rate int, d time.Duration, workers int) Load {
	n := int(d.Seconds() * float64(rate))
	due := make(chan time.Time, n)
	var mu sync.Mutex
	lat := make([]time.Duration, 0, n)
	var errs atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for t := range due {
				_, err := do(ctx)
				l := time.Since(t)
				if err != nil {
					errs.Add(1)
				}
				mu.Lock()
				lat = append(lat, l)
				mu.Unlock()
			}
		}()
	}
	start := time.Now()
	interval := time.Second / time.Duration(rate)
	for i := range n {
		t := start.Add(time.Duration(i) * interval)
		if w := time.Until(t); w > 0 {
			time.Sleep(w)
		}
		if ctx.Err() != nil {
			break
		}
		due <- t
	}
	close(due)
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(lat)
	l := Load{Sent: len(lat), Errors: int(errs.Load()), Achieved: float64(len(lat)) / elapsed.Seconds()}
	if len(lat) > 0 {
		l.P50 = lat[len(lat)*50/100]
		l.P99 = lat[min(len(lat)-1, len(lat)*99/100)]
		l.Max = lat[len(lat)-1]
	}
	return l
}

// closedLoop sends as fast as workers can for d and returns completed
// requests per second.
func closedLoop(ctx context.Context, do func(context.Context) (int, error), d time.Duration, workers int) float64 {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var done atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if _, err := do(ctx); err == nil {
					done.Add(1)
				} else if errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	return float64(done.Load()) / time.Since(start).Seconds()
}
