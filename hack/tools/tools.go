//go:build tools

// Package tools pins the binaries the test harness and the Makefile build
// into bin/. It lives in its own module so these dependencies never leak into
// Harbormaster's own go.mod.
package tools

import (
	_ "github.com/open-policy-agent/opa"
	_ "go.etcd.io/etcd/server/v3"
	_ "honnef.co/go/tools/cmd/staticcheck"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
