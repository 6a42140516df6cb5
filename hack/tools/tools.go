//go:build tools

// Package tools pins the binaries the test harness and the Makefile build
// into bin/. It lives in its own module so these dependencies never leak into
// Harbormaster's own go.mod.
//
// kwok, which plays the kubelets of the demo's nodes, is pinned in kwok/: it
// needs newer k8s.io libraries than this module's kube-apiserver, and one
// module holds one version of each.
package tools

import (
	_ "github.com/open-policy-agent/opa"
	_ "go.etcd.io/etcd/server/v3"
	_ "honnef.co/go/tools/cmd/staticcheck"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
