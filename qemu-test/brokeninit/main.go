// Command brokeninit is the init of a deliberately broken Plinth image for
// the upgrade test: it says so on the console and exits at once, so the
// kernel panics ("Attempted to kill init") and, with panic=10, reboots.
package main

import (
	"fmt"
	"os"
)

// Marker is what it prints before exiting.
const Marker = "PLINTH-BROKEN-INIT: this image is broken on purpose; exiting"

func main() {
	fmt.Println(Marker)
	os.Exit(1)
}
