// Command pause is the first process of every pod sandbox on the offline cluster.
//
// The container runtime starts it to hold the pod's namespaces open while the real
// containers come and go. It does nothing but wait: it exits 0 on SIGINT or SIGTERM,
// and, being PID 1 when the pod shares its process namespace, it reaps the orphans
// that get re-parented to it so they never pile up as zombies.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "-v" {
		fmt.Println("pause (sales-forecast offline cluster)")
		return
	}

	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range signals {
		if sig != syscall.SIGCHLD {
			os.Exit(0)
		}
		reapChildren()
	}
}

// reapChildren collects every exited child; one SIGCHLD can stand for several exits.
func reapChildren() {
	for {
		var status syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}
