// Command plinth-init is the appliance's init, the kernel's first process
// (/init in the initramfs). The work is in package appinit.
package main

import (
	"fmt"
	"os"
	"os/exec"
	"time"

	"github.com/plinth/plinth/initramfs/appinit"
)

func main() {
	err := appinit.Run(appinit.Default())
	if os.Getpid() != 1 {
		if err != nil {
			fmt.Fprintf(os.Stderr, "plinth-init: %v\n", err)
			os.Exit(1)
		}
		return
	}
	// PID 1 must not exit (the kernel would panic): a failed boot or power
	// off that returned leaves a shell on the console, as long as it lasts.
	fmt.Fprintf(os.Stderr, "plinth-init: %v\nplinth-init: starting a shell on the console\n", err)
	for {
		sh := exec.Command("/bin/defaultsh")
		sh.Stdin, sh.Stdout, sh.Stderr = os.Stdin, os.Stdout, os.Stderr
		if err := sh.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "plinth-init: shell: %v\n", err)
		}
		time.Sleep(time.Second)
	}
}
