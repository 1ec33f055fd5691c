// CoreDNS with only the plugins the local cluster's Corefile uses (bind,
// errors, ready, kubernetes, cache). `go build github.com/coredns/coredns`
// compiles every plugin, cloud DNS providers and their SDKs included, which
// more than doubles a cold build; plugins register themselves when imported.
package main

import (
	"github.com/coredns/coredns/coremain"
	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/ready"
)

func main() {
	coremain.Run()
}
