package api

// Byte streams over an HTTP/1.1 upgrade. A GET of a stream path with the
// headers "Connection: Upgrade" and "Upgrade: plinth-stream" is answered
// "101 Switching Protocols"; the connection then carries raw bytes both ways
// until either side closes it. A refusal is an ordinary problem answer
// (400 without the Upgrade header, 404 for an unknown VM, 409 when the VM is
// not running or lacks the device).
const (
	// StreamProtocol is the Upgrade token of the byte streams.
	StreamProtocol = "plinth-stream"
	// ConsoleStream: GET VMKernelVMPath + ID + "/" + ConsoleStream streams
	// the VM's serial console: first the retained tail (the last 64 KiB, as
	// the console route answers), then the guest's output as it comes;
	// bytes sent go to the guest's serial port. Viewers share the console;
	// one that falls behind is disconnected.
	ConsoleStream = "console/stream"
	// VNCStream: GET VMKernelVMPath + ID + "/" + VNCStream is the VM's VNC
	// (RFB) server, as is, for a VM whose spec has VNC on.
	VNCStream = "vnc/stream"
)
