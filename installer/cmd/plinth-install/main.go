// Command plinth-install installs the running Plinth onto a disk of this
// host, from the USB stick it booted from: by hand (it lists the disks,
// asks which, and asks to type the disk's name to confirm) or from an
// answer file (--answer FILE; --check only parses it and picks the disk).
//
//	plinth-install list
//	plinth-install [--disk /dev/sdb] [--overwrite] [--yes]
//	plinth-install --answer answer.cfg [--check]
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/plinth/plinth/board"
	"github.com/plinth/plinth/installer"
)

func main() {
	if err := run(os.Args[1:], os.Stdin, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "plinth-install: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string, in io.Reader, out io.Writer) error {
	fs := flag.NewFlagSet("plinth-install", flag.ContinueOnError)
	disk := fs.String("disk", "", "target disk (/dev/sdb); asked when not given")
	overwrite := fs.Bool("overwrite", false, "allow a disk that holds data or another Plinth")
	yes := fs.Bool("yes", false, "do not ask for confirmation")
	answer := fs.String("answer", "", "install as the answer file says")
	check := fs.Bool("check", false, "with --answer: check the answer file and the disk choice, write nothing")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	env := installer.DefaultEnv()
	logf := func(format string, a ...any) { fmt.Fprintf(out, format+"\n", a...) }

	hw, err := board.Read(board.DefaultRoot())
	if err != nil {
		return err
	}
	cands := installer.Candidates(hw, env)
	if fs.Arg(0) == "list" {
		printCandidates(out, cands)
		return nil
	}
	if *answer != "" {
		f, err := os.Open(*answer)
		if err != nil {
			return err
		}
		a, err := installer.ParseAnswer(f)
		f.Close()
		if err != nil {
			return err
		}
		if *check {
			c, err := installer.Select(cands, a.Disk, a.Overwrite)
			if err != nil {
				return err
			}
			logf("answer file OK; it would install to /dev/%s", c.Disk.Name)
			return nil
		}
		res, err := installer.Unattended(ctx, env, a, logf)
		if err != nil {
			return err
		}
		logf("installed to %s in %.1f s", res.Disk, res.Duration.Seconds())
		return nil
	}

	rd := bufio.NewReader(in)
	printCandidates(out, cands)
	if *disk == "" {
		fmt.Fprint(out, "Install to which disk (name, e.g. sdb)? ")
		line, err := rd.ReadString('\n')
		if err != nil {
			return errors.New("no disk chosen")
		}
		*disk = strings.TrimSpace(line)
	}
	c, err := installer.Select(cands, installer.DiskSelector{Path: *disk}, *overwrite || !*yes)
	if err != nil {
		return err
	}
	plan, err := installer.NewPlan(env, c, installer.Config{})
	if err != nil {
		return err
	}
	if !*yes {
		for _, w := range c.Warnings {
			fmt.Fprintf(out, "WARNING: /dev/%s %s\n", c.Disk.Name, w)
		}
		fmt.Fprintf(out, "Everything on /dev/%s (%s) will be erased. Type its name (%s) to go on: ", c.Disk.Name, installer.HumanSize(c.Disk.SizeBytes), c.Disk.Name)
		line, _ := rd.ReadString('\n')
		if strings.TrimSpace(line) != c.Disk.Name {
			return errors.New("not confirmed; nothing written")
		}
	}
	err = installer.Install(ctx, plan, func(p installer.Progress) {
		if p.Total > 0 {
			fmt.Fprintf(out, "\r%s: %3d%%", p.Step, p.Done*100/p.Total)
			if p.Done == p.Total {
				fmt.Fprintln(out)
			}
			return
		}
		fmt.Fprintf(out, "%s: %s\n", p.Step, p.Message)
	})
	if err != nil {
		return err
	}
	logf("Done. Power off, remove the boot medium and boot from /dev/%s.", c.Disk.Name)
	return nil
}

func printCandidates(w io.Writer, cands []installer.Candidate) {
	fmt.Fprintf(w, "%-8s %10s  %-24s %-20s %s\n", "DISK", "SIZE", "MODEL", "SERIAL", "STATUS")
	for _, c := range cands {
		st := "ok"
		if c.Refused != "" {
			st = "refused: " + c.Refused
		} else if len(c.Warnings) > 0 {
			st = "warning: " + strings.Join(c.Warnings, "; ")
		}
		fmt.Fprintf(w, "%-8s %10s  %-24.24s %-20.20s %s\n", c.Disk.Name, installer.HumanSize(c.Disk.SizeBytes), c.Disk.Model, c.Disk.Serial, st)
	}
}
