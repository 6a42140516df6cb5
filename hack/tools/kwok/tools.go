//go:build tools

// Package tools pins kwok, which simulates the kubelets of the demo's nodes
// (heartbeats, leases, pod status). It has a module of its own because kwok
// needs newer k8s.io libraries than the kube-apiserver pinned in ../go.mod,
// and one module can hold only one version of each.
package tools

import (
	_ "sigs.k8s.io/kwok/cmd/kwok"
)
