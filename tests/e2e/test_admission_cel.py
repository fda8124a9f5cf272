"""ValidatingAdmissionPolicy and CRD validation rules (CEL) against a real `kyb server`,
driven by real kubectl."""

from __future__ import annotations

import textwrap
import time
import uuid

POLICY = textwrap.dedent("""
    apiVersion: admissionregistration.k8s.io/v1
    kind: ValidatingAdmissionPolicy
    metadata:
      name: {name}
    spec:
      failurePolicy: Fail
      matchConstraints:
        resourceRules:
        - apiGroups: ["apps"]
          apiVersions: ["v1"]
          operations: ["CREATE", "UPDATE"]
          resources: ["deployments"]
        namespaceSelector:
          matchLabels: {{cel-test: "{ns}"}}
      {extra}
    ---
    apiVersion: admissionregistration.k8s.io/v1
    kind: ValidatingAdmissionPolicyBinding
    metadata:
      name: {name}-binding
    spec:
      policyName: {name}
      validationActions: [{actions}]
      {binding_extra}
    """)


def namespace(kubectl) -> str:
    ns = f"cel-{uuid.uuid4().hex[:8]}"
    kubectl.ok("create", "namespace", ns)
    kubectl.ok("label", "namespace", ns, f"cel-test={ns}")
    return ns


def apply_policy(kubectl, name: str, ns: str, extra: str, actions: str = "Deny", binding_extra: str = "") -> None:
    text = POLICY.format(name=name, ns=ns, extra=textwrap.indent(textwrap.dedent(extra), "  ").strip(),
                         actions=actions, binding_extra=textwrap.indent(textwrap.dedent(binding_extra), "  ").strip())
    kubectl.ok("apply", "-f", "-", stdin=text)


def create_until(kubectl, args: list[str], want_fail: bool, timeout: float = 10.0):
    """Policies take effect once the server's cache has them: retry briefly."""
    deadline = time.monotonic() + timeout
    while True:
        r = kubectl(*args)
        if (r.returncode != 0) == want_fail or time.monotonic() > deadline:
            return r
        if r.returncode == 0:
            kubectl("delete", *args[1:3], "-n", args[args.index("-n") + 1], "--wait=false")
        time.sleep(0.3)


def test_policy_refuses_more_than_five_replicas_with_its_message(kubectl):
    ns = namespace(kubectl)
    name = f"replicas-{ns}"
    apply_policy(kubectl, name, ns, """
        validations:
        - expression: "object.spec.replicas <= 5"
          message: "replicas must be no greater than 5"
        """)
    try:
        r = create_until(kubectl, ["create", "deployment", "big", "-n", ns, "--image=nginx", "--replicas=6"], True)
        assert r.returncode != 0
        assert (f"deployments.apps \"big\" is forbidden: ValidatingAdmissionPolicy '{name}' with binding "
                f"'{name}-binding' denied request: replicas must be no greater than 5") in r.stderr
        kubectl.ok("create", "deployment", "small", "-n", ns, "--image=nginx", "--replicas=3")
        # An update past the limit is refused too.
        r = kubectl("scale", "deployment", "small", "-n", ns, "--replicas=7")
        assert r.returncode != 0 and "replicas must be no greater than 5" in r.stderr
        # Another namespace is not selected.
        other = f"{ns}-free"
        kubectl.ok("create", "namespace", other)
        kubectl.ok("create", "deployment", "big", "-n", other, "--image=nginx", "--replicas=6")
        kubectl.ok("delete", "namespace", other, "--wait=false")
    finally:
        kubectl("delete", "validatingadmissionpolicybinding", f"{name}-binding")
        kubectl("delete", "validatingadmissionpolicy", name)
        kubectl("delete", "namespace", ns, "--wait=false")


def test_warn_mode_prints_a_warning_and_admits(kubectl):
    ns = namespace(kubectl)
    name = f"warn-{ns}"
    apply_policy(kubectl, name, ns, """
        validations:
        - expression: "object.spec.replicas <= 5"
          messageExpression: "'replicas ' + string(object.spec.replicas) + ' is more than 5'"
        """, actions="Warn")
    try:
        deadline = time.monotonic() + 10
        i = 0
        while True:
            r = kubectl("create", "deployment", f"w{i}", "-n", ns, "--image=nginx", "--replicas=8")
            assert r.returncode == 0, r.stderr
            if "Warning:" in r.stderr or time.monotonic() > deadline:
                break
            i += 1
            time.sleep(0.3)
        assert (f"Warning: Validation failed for ValidatingAdmissionPolicy '{name}' with binding "
                f"'{name}-binding': replicas 8 is more than 5") in r.stderr
    finally:
        kubectl("delete", "validatingadmissionpolicybinding", f"{name}-binding")
        kubectl("delete", "validatingadmissionpolicy", name)
        kubectl("delete", "namespace", ns, "--wait=false")


def test_policy_with_a_configmap_param(kubectl):
    ns = namespace(kubectl)
    name = f"param-{ns}"
    kubectl.ok("create", "configmap", "limits", "-n", ns, "--from-literal=maxReplicas=2")
    apply_policy(kubectl, name, ns, """
        paramKind:
          apiVersion: v1
          kind: ConfigMap
        validations:
        - expression: "object.spec.replicas <= int(params.data.maxReplicas)"
          messageExpression: "'at most ' + params.data.maxReplicas + ' replicas in ' + request.namespace"
          reason: Forbidden
        """, binding_extra="""
        paramRef:
          name: limits
          parameterNotFoundAction: Deny
        """)
    try:
        r = create_until(kubectl, ["create", "deployment", "three", "-n", ns, "--image=nginx", "--replicas=3"], True)
        assert r.returncode != 0
        assert f"denied request: at most 2 replicas in {ns}" in r.stderr
        kubectl.ok("create", "deployment", "two", "-n", ns, "--image=nginx", "--replicas=2")
        # Without its param, a Deny parameterNotFoundAction refuses.
        kubectl.ok("delete", "configmap", "limits", "-n", ns)
        r = create_until(kubectl, ["create", "deployment", "one", "-n", ns, "--image=nginx", "--replicas=1"], True)
        assert "no params found for policy binding with `Deny` parameterNotFoundAction" in r.stderr
    finally:
        kubectl("delete", "validatingadmissionpolicybinding", f"{name}-binding")
        kubectl("delete", "validatingadmissionpolicy", name)
        kubectl("delete", "namespace", ns, "--wait=false")


def test_policy_with_a_bad_expression_is_refused(kubectl):
    r = kubectl("apply", "-f", "-", stdin=textwrap.dedent("""
        apiVersion: admissionregistration.k8s.io/v1
        kind: ValidatingAdmissionPolicy
        metadata: {name: broken-cel}
        spec:
          matchConstraints:
            resourceRules:
            - {apiGroups: ["apps"], apiVersions: ["v1"], operations: ["CREATE"], resources: ["deployments"]}
          validations:
          - expression: "object.spec.replicas <="
        """))
    assert r.returncode != 0
    assert "spec.validations[0].expression" in r.stderr and "compilation failed: ERROR: <input>:1:" in r.stderr


CRD = textwrap.dedent("""
    apiVersion: apiextensions.k8s.io/v1
    kind: CustomResourceDefinition
    metadata:
      name: counters.cel.example.com
    spec:
      group: cel.example.com
      scope: Namespaced
      names: {plural: counters, singular: counter, kind: Counter}
      versions:
      - name: v1
        served: true
        storage: true
        schema:
          openAPIV3Schema:
            type: object
            properties:
              spec:
                type: object
                x-kubernetes-validations:
                - rule: "self.x >= oldSelf.x"
                  message: "x may only grow"
                - rule: "self.x <= 100"
                properties:
                  x: {type: integer}
    """)


def counter(x: int) -> str:
    return f"apiVersion: cel.example.com/v1\nkind: Counter\nmetadata: {{name: c1, namespace: default}}\nspec: {{x: {x}}}\n"


def test_crd_transition_rule_refuses_decrease(kubectl):
    kubectl.ok("apply", "-f", "-", stdin=CRD)
    try:
        deadline = time.monotonic() + 15
        while kubectl("get", "counters").returncode != 0 and time.monotonic() < deadline:
            time.sleep(0.3)
        kubectl.ok("create", "-f", "-", stdin=counter(5))  # create: the transition rule does not apply
        r = kubectl("replace", "-f", "-", stdin=counter(3))
        assert r.returncode != 0
        assert 'The Counter "c1" is invalid: spec: Invalid value: "object": x may only grow' in r.stderr
        kubectl.ok("replace", "-f", "-", stdin=counter(7))
        r = kubectl("apply", "-f", "-", stdin=counter(200))
        assert r.returncode != 0 and "failed rule: self.x <= 100" in r.stderr
        r = kubectl("create", "-f", "-", stdin=counter(200).replace("c1", "c2"))
        assert r.returncode != 0 and "failed rule: self.x <= 100" in r.stderr
    finally:
        kubectl("delete", "crd", "counters.cel.example.com", "--wait=false")


def test_crd_with_a_bad_rule_is_refused(kubectl):
    bad = CRD.replace("counters", "brokens").replace("Counter", "Broken").replace("counter", "broken") \
        .replace("self.x <= 100", "self.x <=")
    r = kubectl("apply", "-f", "-", stdin=bad)
    assert r.returncode != 0
    assert "x-kubernetes-validations[1].rule" in r.stderr and "compilation failed" in r.stderr


def test_policy_on_delete_sees_the_old_object(kubectl):
    ns = namespace(kubectl)
    name = f"delete-{ns}"
    text = textwrap.dedent(f"""
        apiVersion: admissionregistration.k8s.io/v1
        kind: ValidatingAdmissionPolicy
        metadata: {{name: {name}}}
        spec:
          matchConstraints:
            resourceRules:
            - {{apiGroups: [""], apiVersions: ["v1"], operations: ["DELETE"], resources: ["configmaps"]}}
            namespaceSelector: {{matchLabels: {{cel-test: "{ns}"}}}}
          validations:
          - expression: "object == null && oldObject.metadata.?labels.?protected.orValue('') != 'true'"
            message: "protected ConfigMaps may not be deleted"
        ---
        apiVersion: admissionregistration.k8s.io/v1
        kind: ValidatingAdmissionPolicyBinding
        metadata: {{name: {name}-binding}}
        spec: {{policyName: {name}, validationActions: [Deny]}}
        """)
    kubectl.ok("apply", "-f", "-", stdin=text)
    try:
        kubectl.ok("create", "configmap", "keep", "-n", ns)
        kubectl.ok("label", "configmap", "keep", "-n", ns, "protected=true")
        kubectl.ok("create", "configmap", "gone", "-n", ns)
        deadline = time.monotonic() + 10
        while True:
            r = kubectl("delete", "configmap", "keep", "-n", ns)
            if r.returncode != 0 or time.monotonic() > deadline:
                break
            kubectl.ok("create", "configmap", "keep", "-n", ns)
            kubectl.ok("label", "configmap", "keep", "-n", ns, "protected=true")
            time.sleep(0.3)
        assert r.returncode != 0
        # kubectl shows a 422 with causes as upstream's server makes it: `The configmaps "keep" is invalid: : ...`
        assert (f"ValidatingAdmissionPolicy '{name}' with binding '{name}-binding' denied request: "
                "protected ConfigMaps may not be deleted") in r.stderr
        kubectl.ok("delete", "configmap", "gone", "-n", ns)
        kubectl.ok("get", "configmap", "keep", "-n", ns)
    finally:
        kubectl("delete", "validatingadmissionpolicybinding", f"{name}-binding")
        kubectl("delete", "validatingadmissionpolicy", name)
        kubectl("delete", "namespace", ns, "--wait=false")
