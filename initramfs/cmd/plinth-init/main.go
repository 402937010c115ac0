// Command plinth-init is the appliance init that u-root's init runs as uinit.
// The work is in package appinit.
package main

import (
	"log"

	"github.com/plinth/plinth/initramfs/appinit"
)

func main() {
	if err := appinit.Run(appinit.Default()); err != nil {
		log.Fatalf("plinth-init: %v", err)
	}
}
