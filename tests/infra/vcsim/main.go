// vcsim: the govmomi vCenter simulator as a tiny program, built in GOPATH mode
// from Debian's golang-github-vmware-govmomi-dev (no module downloads).
// It listens on 127.0.0.1 only, prints its SDK URL on stdout once ready, and
// removes its temporary datastore directory on SIGINT/SIGTERM.
package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"log"
	"net/url"
	"os"
	"os/signal"
	"syscall"

	"github.com/vmware/govmomi/simulator"
	_ "github.com/vmware/govmomi/vapi/simulator" // REST /rest endpoints
)

func main() {
	addr := flag.String("l", "127.0.0.1:0", "listen address (port 0 picks a free one)")
	useTLS := flag.Bool("tls", true, "serve https")
	username := flag.String("username", "user", "the only user name accepted")
	password := flag.String("password", "pass", "the only password accepted")
	flag.Parse()
	model := simulator.VPX()
	if err := model.Create(); err != nil {
		log.Fatal(err)
	}
	// A fresh Userinfo (not simulator.DefaultLogin) makes the simulator check
	// credentials exactly instead of accepting any non-empty pair.
	model.Service.Listen = &url.URL{Host: *addr, User: url.UserPassword(*username, *password)}
	if *useTLS {
		model.Service.TLS = new(tls.Config) // Go's built-in localhost test certificate
	}
	model.Service.RegisterEndpoints = true
	s := model.Service.NewServer()
	fmt.Println(s.URL.String())
	os.Stdout.Sync()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	model.Remove()
	s.Close()
}
