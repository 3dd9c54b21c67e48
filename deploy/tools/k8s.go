package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// kinds are the object kinds the base may contain, each decoded into its
// k8s.io/api type. Any other kind is an error: add it here with its type.
var kinds = map[string]func() any{
	"v1/Namespace":                       func() any { return &corev1.Namespace{} },
	"v1/ServiceAccount":                  func() any { return &corev1.ServiceAccount{} },
	"v1/ConfigMap":                       func() any { return &corev1.ConfigMap{} },
	"v1/Secret":                          func() any { return &corev1.Secret{} },
	"v1/Service":                         func() any { return &corev1.Service{} },
	"apps/v1/Deployment":                 func() any { return &appsv1.Deployment{} },
	"batch/v1/Job":                       func() any { return &batchv1.Job{} },
	"policy/v1/PodDisruptionBudget":      func() any { return &policyv1.PodDisruptionBudget{} },
	"networking.k8s.io/v1/NetworkPolicy": func() any { return &networkingv1.NetworkPolicy{} },
}

// workload is a pod template with its owner, for the cross-object checks.
type workload struct {
	id       string
	ns       string
	replicas int32
	template corev1.PodTemplateSpec
}

// checkK8s renders the kustomization in dir with kustomize's own library
// (what `kustomize build` and `kubectl kustomize` run), writes the result to
// out when given, decodes every object strictly into its k8s.io/api type and
// checks references between the objects and the pod policies the service
// relies on.
func checkK8s(dir, out string) ([]string, error) {
	opts := krusty.MakeDefaultOptions()
	opts.Reorder = krusty.ReorderOptionUnspecified // as the kustomize CLI: legacy order unless sortOptions says otherwise
	k := krusty.MakeKustomizer(opts)
	rm, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, fmt.Errorf("kustomize build: %w", err)
	}
	if out != "" {
		b, err := rm.AsYaml()
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(out, b, 0o644); err != nil {
			return nil, err
		}
	}

	var (
		p          problems
		workloads  []workload
		services   []*corev1.Service
		pdbs       []*policyv1.PodDisruptionBudget
		configMaps = map[string]map[string]bool{} // ns/name -> keys
		secrets    = map[string]map[string]bool{}
		accounts   = map[string]bool{}
	)
	for _, r := range rm.Resources() {
		gvk := r.GetGvk()
		gv := gvk.Version
		if gvk.Group != "" {
			gv = gvk.Group + "/" + gvk.Version
		}
		key := gv + "/" + gvk.Kind
		id := fmt.Sprintf("%s %s/%s", gvk.Kind, r.GetNamespace(), r.GetName())
		newObj, ok := kinds[key]
		if !ok {
			p.addf("%s: kind %s is not known to the validator", id, key)
			continue
		}
		y, err := r.AsYAML()
		if err != nil {
			return nil, err
		}
		j, err := yaml.YAMLToJSONStrict(y)
		if err != nil {
			p.addf("%s: %v", id, err)
			continue
		}
		obj := newObj()
		strict, err := sigsjson.UnmarshalStrict(j, obj)
		if err != nil {
			p.addf("%s: %v", id, err)
			continue
		}
		for _, e := range strict {
			p.addf("%s: %v", id, e)
		}
		meta := metaOf(obj)
		checkMeta(&p, id, key, meta)
		ns := meta.Namespace
		switch o := obj.(type) {
		case *corev1.ConfigMap:
			configMaps[ns+"/"+o.Name] = union(keysOf(o.Data), keysOf(o.BinaryData))
		case *corev1.Secret:
			secrets[ns+"/"+o.Name] = union(keysOf(o.StringData), keysOf(o.Data))
		case *corev1.ServiceAccount:
			accounts[ns+"/"+o.Name] = true
		case *corev1.Service:
			services = append(services, o)
		case *policyv1.PodDisruptionBudget:
			pdbs = append(pdbs, o)
		case *appsv1.Deployment:
			if o.Spec.Selector == nil {
				p.addf("%s: spec.selector is required", id)
			} else if sel, err := metav1.LabelSelectorAsSelector(o.Spec.Selector); err != nil || sel.Empty() {
				p.addf("%s: invalid or empty spec.selector", id)
			} else if !sel.Matches(labels.Set(o.Spec.Template.Labels)) {
				p.addf("%s: spec.selector does not match the pod template's labels", id)
			}
			replicas := int32(1)
			if o.Spec.Replicas != nil {
				replicas = *o.Spec.Replicas
			}
			workloads = append(workloads, workload{id, ns, replicas, o.Spec.Template})
		case *batchv1.Job:
			workloads = append(workloads, workload{id, ns, 1, o.Spec.Template})
		}
	}

	for _, w := range workloads {
		checkPod(&p, w, configMaps, secrets, accounts)
	}
	for _, s := range services {
		id := "Service " + s.Namespace + "/" + s.Name
		if len(s.Spec.Selector) == 0 {
			p.addf("%s: no selector", id)
			continue
		}
		matched := matching(workloads, s.Namespace, labels.SelectorFromSet(s.Spec.Selector))
		if len(matched) == 0 {
			p.addf("%s: selector %v matches no pod template", id, s.Spec.Selector)
		}
		for _, port := range s.Spec.Ports {
			for _, w := range matched {
				if !exposes(w.template.Spec, port.TargetPort, port.Port) {
					p.addf("%s: port %s targets %s, which %s does not expose", id, port.Name, port.TargetPort.String(), w.id)
				}
			}
		}
	}
	for _, d := range pdbs {
		id := "PodDisruptionBudget " + d.Namespace + "/" + d.Name
		sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
		if err != nil || sel.Empty() {
			p.addf("%s: invalid or empty selector", id)
			continue
		}
		matched := matching(workloads, d.Namespace, sel)
		if len(matched) == 0 {
			p.addf("%s: selector matches no pod template", id)
		}
		if d.Spec.MinAvailable != nil && d.Spec.MinAvailable.Type == intstr.Int {
			for _, w := range matched {
				if d.Spec.MinAvailable.IntVal >= w.replicas {
					p.addf("%s: minAvailable %d >= %d replicas of %s: node drains would block forever", id, d.Spec.MinAvailable.IntVal, w.replicas, w.id)
				}
			}
		}
	}

	// Files next to the base that are not part of it (Helm values, operator
	// resources): at least well-formed YAML without duplicate keys.
	deps, _ := filepath.Glob(filepath.Join(dir, "dependencies", "*.yaml"))
	for _, f := range deps {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		for i, doc := range strings.Split(string(b), "\n---") {
			if _, err := yaml.YAMLToJSONStrict([]byte(doc)); err != nil {
				p.addf("%s (document %d): %v", f, i+1, err)
			}
		}
	}
	return p, nil
}

func metaOf(obj any) metav1.ObjectMeta {
	switch o := obj.(type) {
	case *corev1.Namespace:
		return o.ObjectMeta
	case *corev1.ServiceAccount:
		return o.ObjectMeta
	case *corev1.ConfigMap:
		return o.ObjectMeta
	case *corev1.Secret:
		return o.ObjectMeta
	case *corev1.Service:
		return o.ObjectMeta
	case *appsv1.Deployment:
		return o.ObjectMeta
	case *batchv1.Job:
		return o.ObjectMeta
	case *policyv1.PodDisruptionBudget:
		return o.ObjectMeta
	case *networkingv1.NetworkPolicy:
		return o.ObjectMeta
	}
	panic(fmt.Sprintf("metaOf: %T", obj))
}

func checkMeta(p *problems, id, kind string, m metav1.ObjectMeta) {
	for _, e := range validation.IsDNS1123Subdomain(m.Name) {
		p.addf("%s: metadata.name: %s", id, e)
	}
	if kind != "v1/Namespace" && m.Namespace == "" {
		p.addf("%s: no namespace", id)
	}
	checkLabels(p, id+": metadata.labels", m.Labels)
}

func checkLabels(p *problems, where string, l map[string]string) {
	for k, v := range l {
		for _, e := range validation.IsQualifiedName(k) {
			p.addf("%s: key %q: %s", where, k, e)
		}
		for _, e := range validation.IsValidLabelValue(v) {
			p.addf("%s: value %q: %s", where, v, e)
		}
	}
}

func keysOf[V any](m map[string]V) map[string]bool {
	out := map[string]bool{}
	for k := range m {
		out[k] = true
	}
	return out
}

func union(a, b map[string]bool) map[string]bool {
	for k := range b {
		a[k] = true
	}
	return a
}

func matching(ws []workload, ns string, sel labels.Selector) []workload {
	var out []workload
	for _, w := range ws {
		if w.ns == ns && sel.Matches(labels.Set(w.template.Labels)) {
			out = append(out, w)
		}
	}
	return out
}

// exposes reports whether a pod serves target (a port name or number;
// unset means the Service port itself).
func exposes(spec corev1.PodSpec, target intstr.IntOrString, servicePort int32) bool {
	for _, c := range spec.Containers {
		for _, cp := range c.Ports {
			switch {
			case target.Type == intstr.String && target.StrVal != "":
				if cp.Name == target.StrVal {
					return true
				}
			case target.Type == intstr.Int && target.IntVal != 0:
				if cp.ContainerPort == target.IntVal {
					return true
				}
			default:
				if cp.ContainerPort == servicePort {
					return true
				}
			}
		}
	}
	return false
}

// checkPod checks one pod template: references to other objects, probes,
// resources and the restricted security profile.
func checkPod(p *problems, w workload, configMaps, secrets map[string]map[string]bool, accounts map[string]bool) {
	spec := w.template.Spec
	checkLabels(p, w.id+": pod template labels", w.template.Labels)
	if sa := spec.ServiceAccountName; sa != "" && sa != "default" && !accounts[w.ns+"/"+sa] {
		p.addf("%s: serviceAccountName %q is not defined", w.id, sa)
	}
	if len(spec.Containers) == 0 {
		p.addf("%s: no containers", w.id)
	}
	sc := spec.SecurityContext
	if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		p.addf("%s: pod securityContext.runAsNonRoot must be true", w.id)
	}
	if sc == nil || sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		p.addf("%s: pod securityContext.seccompProfile must be RuntimeDefault", w.id)
	}
	volumes := map[string]bool{}
	for _, v := range spec.Volumes {
		if volumes[v.Name] {
			p.addf("%s: volume %q defined twice", w.id, v.Name)
		}
		volumes[v.Name] = true
	}
	grace := int64(30)
	if spec.TerminationGracePeriodSeconds != nil {
		grace = *spec.TerminationGracePeriodSeconds
	}
	names := map[string]bool{}
	for _, c := range spec.Containers {
		cid := fmt.Sprintf("%s: container %s", w.id, c.Name)
		for _, e := range validation.IsDNS1123Label(c.Name) {
			p.addf("%s: name: %s", cid, e)
		}
		if names[c.Name] {
			p.addf("%s: duplicate container name", cid)
		}
		names[c.Name] = true
		if c.Image == "" {
			p.addf("%s: no image", cid)
		}
		ports := map[string]bool{}
		for _, cp := range c.Ports {
			if cp.Name != "" {
				for _, e := range validation.IsValidPortName(cp.Name) {
					p.addf("%s: port name %q: %s", cid, cp.Name, e)
				}
				ports[cp.Name] = true
			}
			for _, e := range validation.IsValidPortNum(int(cp.ContainerPort)) {
				p.addf("%s: containerPort: %s", cid, e)
			}
		}
		for _, e := range c.Env {
			for _, msg := range validation.IsEnvVarName(e.Name) {
				p.addf("%s: env %q: %s", cid, e.Name, msg)
			}
			if e.ValueFrom != nil {
				if r := e.ValueFrom.SecretKeyRef; r != nil && !optional(r.Optional) && !secrets[w.ns+"/"+r.Name][r.Key] {
					p.addf("%s: env %s: secret %s has no key %s", cid, e.Name, r.Name, r.Key)
				}
				if r := e.ValueFrom.ConfigMapKeyRef; r != nil && !optional(r.Optional) && !configMaps[w.ns+"/"+r.Name][r.Key] {
					p.addf("%s: env %s: config map %s has no key %s", cid, e.Name, r.Name, r.Key)
				}
			}
		}
		for _, ef := range c.EnvFrom {
			if r := ef.ConfigMapRef; r != nil && !optional(r.Optional) && configMaps[w.ns+"/"+r.Name] == nil {
				p.addf("%s: envFrom config map %q is not defined", cid, r.Name)
			}
			if r := ef.SecretRef; r != nil && !optional(r.Optional) && secrets[w.ns+"/"+r.Name] == nil {
				p.addf("%s: envFrom secret %q is not defined", cid, r.Name)
			}
		}
		for _, m := range c.VolumeMounts {
			if !volumes[m.Name] {
				p.addf("%s: volumeMount %q has no volume", cid, m.Name)
			}
		}
		// Probes: a container that serves a port must have all three, on a
		// port it declares.
		if len(c.Ports) > 0 {
			for name, pr := range map[string]*corev1.Probe{"startupProbe": c.StartupProbe, "readinessProbe": c.ReadinessProbe, "livenessProbe": c.LivenessProbe} {
				if pr == nil {
					p.addf("%s: no %s", cid, name)
					continue
				}
				if g := pr.HTTPGet; g != nil && g.Port.Type == intstr.String && !ports[g.Port.StrVal] {
					p.addf("%s: %s uses port %q, which the container does not declare", cid, name, g.Port.StrVal)
				}
			}
			if c.LivenessProbe != nil && c.ReadinessProbe != nil && c.LivenessProbe.HTTPGet != nil && c.ReadinessProbe.HTTPGet != nil &&
				c.LivenessProbe.HTTPGet.Path == c.ReadinessProbe.HTTPGet.Path {
				p.addf("%s: liveness and readiness probe the same path; liveness must not depend on NATS/MongoDB", cid)
			}
		}
		// Resources: requests and limits for cpu and memory, requests <= limits.
		for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			req, okReq := c.Resources.Requests[res]
			lim, okLim := c.Resources.Limits[res]
			if !okReq {
				p.addf("%s: no %s request", cid, res)
			}
			if !okLim {
				p.addf("%s: no %s limit", cid, res)
			}
			if okReq && okLim && req.Cmp(lim) > 0 {
				p.addf("%s: %s request %s above its limit %s", cid, res, req.String(), lim.String())
			}
		}
		csc := c.SecurityContext
		switch {
		case csc == nil:
			p.addf("%s: no securityContext", cid)
		default:
			if csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation {
				p.addf("%s: allowPrivilegeEscalation must be false", cid)
			}
			if csc.ReadOnlyRootFilesystem == nil || !*csc.ReadOnlyRootFilesystem {
				p.addf("%s: readOnlyRootFilesystem must be true", cid)
			}
			if csc.Privileged != nil && *csc.Privileged {
				p.addf("%s: privileged", cid)
			}
			if csc.Capabilities == nil || !slices.Contains(csc.Capabilities.Drop, "ALL") {
				p.addf("%s: capabilities must drop ALL", cid)
			}
		}
		if c.Lifecycle != nil && c.Lifecycle.PreStop != nil && c.Lifecycle.PreStop.Sleep != nil &&
			c.Lifecycle.PreStop.Sleep.Seconds >= grace {
			p.addf("%s: preStop sleep %ds leaves no time of the %ds grace period for the drain", cid, c.Lifecycle.PreStop.Sleep.Seconds, grace)
		}
		if c.Lifecycle != nil && c.Lifecycle.PreStop != nil && c.Lifecycle.PreStop.Exec != nil {
			p.addf("%s: preStop exec needs a shell or binary the distroless image does not have; use sleep", cid)
		}
	}
}

func optional(b *bool) bool { return b != nil && *b }
