package explain

import (
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	appsdefaults "k8s.io/kubernetes/pkg/apis/apps/v1"
	batchdefaults "k8s.io/kubernetes/pkg/apis/batch/v1"
	coredefaults "k8s.io/kubernetes/pkg/apis/core/v1"
)

// setDefaults applies the API server's defaulting of this Kubernetes
// version, which runs when the request is decoded, before any webhook. It
// matters: a container with only a limit reaches the webhook with request =
// limit, and that is the request overcommit lowers.
func setDefaults(obj runtime.Object) {
	switch o := obj.(type) {
	case *corev1.Pod:
		coredefaults.SetObjectDefaults_Pod(o)
	case *appsv1.Deployment:
		appsdefaults.SetObjectDefaults_Deployment(o)
	case *appsv1.ReplicaSet:
		appsdefaults.SetObjectDefaults_ReplicaSet(o)
	case *appsv1.StatefulSet:
		appsdefaults.SetObjectDefaults_StatefulSet(o)
	case *appsv1.DaemonSet:
		appsdefaults.SetObjectDefaults_DaemonSet(o)
	case *batchv1.Job:
		batchdefaults.SetObjectDefaults_Job(o)
	case *batchv1.CronJob:
		batchdefaults.SetObjectDefaults_CronJob(o)
	}
}
