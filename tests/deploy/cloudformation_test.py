#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""deploy/cloudformation/hanat.yaml: its structure, its IAM policy, and a deployment into
moto's CloudFormation that `hanatd plan` then reads as a NAT of the group would.

1. Structure: cfn-lint (CloudFormation's resource schemas) finds nothing; every Ref,
   Fn::GetAtt, Fn::Sub variable, Condition and DependsOn names a parameter, resource,
   condition or pseudo parameter of the template; the policy
   statements equal conf/iam-policy.json (REPLACE-WITH-GROUP = Ref GroupName); the launch
   template tags instances and network interfaces with hanat:group; the security group
   admits ICMP, TCP 4790 and UDP 4789 from itself and everything from PrivateCidr.
2. Deployment: moto_server (127.0.0.1, free port) gets a VPC, public and private subnets
   and tagged private route tables, then the stack (two zones; then three zones with
   ElasticIps = create). Asserted: CREATE_COMPLETE, one Auto Scaling group of size 1 per
   public subnet, one tagged NAT instance per zone, the launch template as stored (tags for
   network interfaces, security group, IMDSv2), the role's policy, the security group's
   rules, the outputs, and the rendered user data passes tests/package/cloud_init_test.py
   (the same checks as conf/cloud-init.yaml, including `hanatd --check-config`).
3. Plan: a fake IMDS (tests/e2e/hanatlab/imds.py on 127.0.0.1, free port) answers as the
   zone-A NAT, with credentials of the stack's role from STS. `hanatd plan` must find every
   NAT of the group and allocate every private route table to the NAT of its zone.

What moto 5.2.1 does not do, so this test cannot show it (the template is written for AWS;
deploy/README.md lists the same):
- An AWS::SSM::Parameter::Value parameter's Default is resolved even when a value is
  given, and names under /aws/ cannot be created: the test deploys a copy whose ImageId
  default is a parameter it created; nothing else in the template is changed.
- Instances launched by an Auto Scaling group get the launch template's instance tags, but
  not its network-interface tags, security groups, instance profile or metadata options:
  those are asserted on the launch template as stored, not on the instances.
- LifecycleHookSpecificationList creates no hook; AWS::EC2::EIP ignores Tags.
- IAM is not enforced on the plan's calls: with moto's authorization on
  (/moto-api/reset-auth), AssumeRole of a role created through CloudFormation fails inside
  moto (TypeError in access_control._check_principal) and so does every call signed with
  its credentials (KeyError 'policy_document'). The policy is compared with
  conf/iam-policy.json instead, which tests/unit/iam checks against the calls hanatd makes.
- No instance boots: cloud-init, the package install and the Elastic IP association in the
  user data do not run (the user data is checked statically).

Usage: cloudformation_test.py HANATD
Exit 0 pass, 1 fail, 77 skipped (moto_server or boto3 missing).
"""
import ast
import base64
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
TEMPLATE = os.path.join(ROOT, "deploy", "cloudformation", "hanat.yaml")
POLICY = os.path.join(ROOT, "conf", "iam-policy.json")
CLOUD_INIT_TEST = os.path.join(ROOT, "tests", "package", "cloud_init_test.py")
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))

REGION = "eu-west-1"
DEBIAN_AMI_PARAM = "/aws/service/debian/release/bookworm/latest/amd64"
PSEUDO = {"AWS::AccountId", "AWS::NotificationARNs", "AWS::NoValue", "AWS::Partition",
          "AWS::Region", "AWS::StackId", "AWS::StackName", "AWS::URLSuffix"}

def die_with_parent():
    """preexec_fn: the child gets SIGKILL if this process dies first (PR_SET_PDEATHSIG,
    prctl(2)), so no emulator outlives a test that was killed before its cleanup ran."""
    import ctypes
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG


failures = []


def check(what, ok, detail=""):
    print(("ok:   " if ok else "FAIL: ") + what + ("" if ok else "\n      " +
                                                  str(detail).replace("\n", "\n      ")))
    if not ok:
        failures.append(what)
    return ok


def deadline_poll(what, fn, seconds, interval=0.1):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        v = fn()
        if v:
            return v
        time.sleep(interval)
    raise TimeoutError(f"{what}: not within {seconds}s")


# ---- the template, with CloudFormation's short-form tags as their long form ------------

def load_template(text):
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def construct(tag):
        name = {"Ref": "Ref", "Condition": "Condition"}.get(tag, "Fn::" + tag)

        def f(loader, node):
            if isinstance(node, yaml.ScalarNode):
                v = loader.construct_scalar(node)
                if tag == "GetAtt":
                    v = v.split(".", 1)
            elif isinstance(node, yaml.SequenceNode):
                v = loader.construct_sequence(node, deep=True)
            else:
                v = loader.construct_mapping(node, deep=True)
            return {name: v}
        return f

    for tag in ("Ref", "GetAtt", "Sub", "Join", "If", "Not", "Equals", "And", "Or",
                "Condition", "Base64", "Select", "Split", "FindInMap", "GetAZs",
                "ImportValue", "Cidr"):
        Loader.add_constructor("!" + tag, construct(tag))
    return yaml.load(text, Loader=Loader)  # noqa: S506 (a SafeLoader subclass)


def sub_variables(s):
    # ${Name} and ${Res.Attr}; ${!Literal} is an escape, not a variable.
    return [v for v in re.findall(r"\$\{([^}]+)\}", s) if not v.startswith("!")]


def check_structure(t):
    params = set(t.get("Parameters", {}))
    resources = t.get("Resources", {})
    conditions = set(t.get("Conditions", {}))
    names = params | set(resources) | PSEUDO
    bad = []

    def walk(node, where, local=frozenset()):
        if isinstance(node, dict):
            for k, v in node.items():
                w = f"{where}.{k}"
                if k == "Ref" and isinstance(v, str) and v not in names:
                    bad.append(f"{w}: Ref {v} names no parameter or resource")
                elif k == "Fn::GetAtt":
                    if not (isinstance(v, list) and len(v) == 2 and v[0] in resources and v[1]):
                        bad.append(f"{w}: GetAtt {v} names no resource attribute")
                elif k == "Fn::Sub":
                    text, extra = (v, {}) if isinstance(v, str) else (v[0], v[1])
                    for var in sub_variables(text):
                        base = var.split(".", 1)[0]
                        ok = var in names or var in extra or (
                            "." in var and base in resources)
                        if not ok:
                            bad.append(f"{w}: ${{{var}}} names nothing")
                    walk(extra, w)
                    continue
                elif k in ("Condition", "Fn::If") and where.count(".") >= 1:
                    c = v if isinstance(v, str) else (v[0] if isinstance(v, list) else None)
                    if isinstance(c, str) and c not in conditions:
                        bad.append(f"{w}: condition {c} is not defined")
                walk(v, w, local)
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{where}[{i}]", local)

    walk(t.get("Conditions", {}), "Conditions")
    for name, r in resources.items():
        walk(r.get("Properties", {}), f"Resources.{name}.Properties")
        if "Condition" in r and r["Condition"] not in conditions:
            bad.append(f"Resources.{name}.Condition: {r['Condition']} is not defined")
        deps = r.get("DependsOn", [])
        for d in [deps] if isinstance(deps, str) else deps:
            if d not in resources:
                bad.append(f"Resources.{name}.DependsOn: {d} is not a resource")
    for name, o in t.get("Outputs", {}).items():
        walk(o.get("Value"), f"Outputs.{name}.Value")
        if "Condition" in o and o["Condition"] not in conditions:
            bad.append(f"Outputs.{name}.Condition: {o['Condition']} is not defined")
    check("every Ref, GetAtt, Sub variable, Condition and DependsOn names something "
          f"({len(resources)} resources, {len(params)} parameters)", not bad, "\n".join(bad))


def resolve_group(node, value):
    """The node with {"Ref": "GroupName"} replaced by value."""
    if isinstance(node, dict):
        if node == {"Ref": "GroupName"}:
            return value
        return {k: resolve_group(v, value) for k, v in node.items()}
    if isinstance(node, list):
        return [resolve_group(v, value) for v in node]
    return node


def check_template(t):
    check_structure(t)
    res = t["Resources"]
    policy = json.load(open(POLICY))
    role = res["NatRole"]["Properties"]
    docs = [p["PolicyDocument"] for p in role["Policies"]]
    check("the role has one policy", len(docs) == 1, docs)
    mine = resolve_group(docs[0], "REPLACE-WITH-GROUP")
    check("the role's policy equals conf/iam-policy.json (group = Ref GroupName)",
          mine == policy, json.dumps(mine, indent=1))

    lt = res["NatLaunchTemplate"]["Properties"]["LaunchTemplateData"]
    specs = {s["ResourceType"]: s["Tags"] for s in lt["TagSpecifications"]}
    group_tag = {"Key": "hanat:group", "Value": {"Ref": "GroupName"}}
    for kind in ("instance", "network-interface"):
        check(f"the launch template tags {kind} with hanat:group",
              group_tag in specs.get(kind, []), specs)
    check("IMDSv2 only", lt["MetadataOptions"].get("HttpTokens") == "required",
          lt["MetadataOptions"])

    ingress = [r["Properties"] for r in res.values()
               if r["Type"] == "AWS::EC2::SecurityGroupIngress"]
    self_ref = {"Fn::GetAtt": ["NatSecurityGroup", "GroupId"]}
    for proto, port in (("icmp", -1), ("tcp", 4790), ("udp", 4789)):
        check(f"the NATs admit {proto} {port} from each other",
              any(i["IpProtocol"] == proto and i["FromPort"] == port and
                  i.get("SourceSecurityGroupId") == self_ref and i["GroupId"] == self_ref
                  for i in ingress), ingress)
    check("the NATs admit all traffic from PrivateCidr",
          any(i["IpProtocol"] == "-1" and i.get("CidrIp") == {"Ref": "PrivateCidr"} and
              i["GroupId"] == self_ref for i in ingress), ingress)
    groups = [n for n, r in res.items() if r["Type"] == "AWS::AutoScaling::AutoScalingGroup"]
    for n in groups:
        p = res[n]["Properties"]
        check(f"{n}: size 1 in one subnet",
              (p["MinSize"], p["MaxSize"], p["DesiredCapacity"]) == ("1", "1", "1")
              and len(p["VPCZoneIdentifier"]) == 1, p)
    check("an Auto Scaling group per zone (A, B, optional C)", len(groups) == 3, groups)
    check(f"the AMI defaults to Debian 12's public SSM parameter {DEBIAN_AMI_PARAM}",
          t["Parameters"]["ImageId"].get("Default") == DEBIAN_AMI_PARAM,
          t["Parameters"]["ImageId"])


def lint_template():
    """cfn-lint: the template against CloudFormation's resource schemas (property names,
    types, allowed values, GetAtt attributes), as AWS would read it. It ships with the
    machine image's python3, beside moto."""
    import importlib.util
    if importlib.util.find_spec("cfnlint") is None:
        print("note: cfn-lint is not installed; the check against CloudFormation's resource "
              "schemas did not run")
        return
    r = subprocess.run([sys.executable, "-c", "import sys\nfrom cfnlint.runner import main\n"
                        "sys.argv[0] = 'cfn-lint'\nsys.exit(main())", TEMPLATE],
                       capture_output=True, text=True, timeout=180)
    check("cfn-lint finds nothing (errors, warnings or notes)", r.returncode == 0,
          r.stdout + r.stderr)


# ---- moto -------------------------------------------------------------------------------

class Moto:
    def __init__(self, workdir):
        self.log = os.path.join(workdir, "moto.log")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", "0"],
            stdout=open(self.log, "w"), stderr=subprocess.STDOUT, preexec_fn=die_with_parent)

        def port():
            if self.proc.poll() is not None:
                raise RuntimeError(f"moto_server exited; see {self.log}")
            m = re.search(r"Running on http://127\.0\.0\.1:(\d+)", open(self.log).read())
            return int(m.group(1)) if m else None
        self.endpoint = f"http://127.0.0.1:{deadline_poll('moto_server to listen', port, 30)}"

    def client(self, service):
        import boto3
        import botocore.config
        # moto's default account; signatures are not checked (see the docstring on IAM).
        return boto3.client(service, endpoint_url=self.endpoint, region_name=REGION,
                            config=botocore.config.Config(retries={"max_attempts": 1}),
                            aws_access_key_id="AKIDHANATTEST", aws_secret_access_key="x")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def make_network(ec2, group, zones, base):
    """A VPC with a public and a private subnet per zone and a private route table per
    zone, tagged hanat:group, associated with the zone's private subnet."""
    vpc = ec2.create_vpc(CidrBlock=f"198.{18 + base}.0.0/16")["Vpc"]["VpcId"]
    net = {"vpc": vpc, "cidr": f"198.{18 + base}.0.0/16", "zones": {}}
    for i, z in enumerate(zones):
        az = REGION + z
        pub = ec2.create_subnet(VpcId=vpc, CidrBlock=f"198.{18 + base}.{i}.0/24",
                                AvailabilityZone=az)["Subnet"]["SubnetId"]
        priv = ec2.create_subnet(VpcId=vpc, CidrBlock=f"198.{18 + base}.{100 + i}.0/24",
                                 AvailabilityZone=az)["Subnet"]["SubnetId"]
        rt = ec2.create_route_table(VpcId=vpc, TagSpecifications=[{
            "ResourceType": "route-table",
            "Tags": [{"Key": "hanat:group", "Value": group},
                     {"Key": "Name", "Value": f"{group}-private-{z}"}]}])["RouteTable"]
        ec2.associate_route_table(RouteTableId=rt["RouteTableId"], SubnetId=priv)
        net["zones"][z] = {"az": az, "public": pub, "private": priv,
                           "public_cidr": f"198.{18 + base}.{i}.0/24",
                           "table": rt["RouteTableId"]}
    return net


def deploy(moto, text, group, net, eips):
    cfn = moto.client("cloudformation")
    zones = net["zones"]
    params = {"GroupName": group, "VpcId": net["vpc"], "PrivateCidr": net["cidr"],
              "PublicSubnetA": zones["a"]["public"], "PublicSubnetB": zones["b"]["public"],
              "PrivateRouteTables": ",".join(z["table"] for z in zones.values()),
              "HanatPackageUrl": "https://example.invalid/hanat_0.1.0-1_amd64.deb",
              "ElasticIps": "create" if eips else "none"}
    if "c" in zones:
        params["PublicSubnetC"] = zones["c"]["public"]
    cfn.create_stack(StackName=group, TemplateBody=text, Capabilities=["CAPABILITY_IAM"],
                     Parameters=[{"ParameterKey": k, "ParameterValue": v}
                                 for k, v in params.items()])
    stack = deadline_poll(
        "the stack to settle",
        lambda: next((s for s in cfn.describe_stacks(StackName=group)["Stacks"]
                      if not s["StackStatus"].endswith("_IN_PROGRESS")), None), 60)
    failed = [f"{e['LogicalResourceId']}: {e.get('ResourceStatusReason')}"
              for e in cfn.describe_stack_events(StackName=group)["StackEvents"]
              if "FAILED" in e["ResourceStatus"]]
    created = check(f"{group}: stack CREATE_COMPLETE", stack["StackStatus"] == "CREATE_COMPLETE",
          f"{stack['StackStatus']}: {stack.get('StackStatusReason')}\n" + "\n".join(failed))
    resources = {r["LogicalResourceId"]: r.get("PhysicalResourceId")
                 for r in cfn.describe_stack_resources(StackName=group)["StackResources"]
                 if "LogicalResourceId" in r}
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    return created, params, resources, outputs


def check_stack(moto, hanatd, group, net, params, resources, outputs, eips):
    ec2 = moto.client("ec2")
    asg = moto.client("autoscaling")
    iam = moto.client("iam")
    zones = net["zones"]

    # One group of size 1 per public subnet.
    names = [resources.get(f"NatGroup{z.upper()}") for z in zones]
    groups = asg.describe_auto_scaling_groups(
        AutoScalingGroupNames=[n for n in names if n])["AutoScalingGroups"]
    by_subnet = {g["VPCZoneIdentifier"]: g for g in groups}
    check(f"{group}: an Auto Scaling group per zone",
          sorted(by_subnet) == sorted(z["public"] for z in zones.values()),
          [(g["AutoScalingGroupName"], g["VPCZoneIdentifier"]) for g in groups])
    check(f"{group}: each of size 1 with one instance",
          all((g["MinSize"], g["MaxSize"], g["DesiredCapacity"], len(g["Instances"])) ==
              (1, 1, 1, 1) for g in groups),
          [(g["MinSize"], g["MaxSize"], g["DesiredCapacity"], g["Instances"]) for g in groups])
    check(f"{group}: the groups launch from the stack's launch template",
          all(g.get("LaunchTemplate", {}).get("LaunchTemplateId") ==
              resources.get("NatLaunchTemplate") for g in groups),
          [g.get("LaunchTemplate") for g in groups])

    # The NATs, found as hanatd finds them.
    found = [i for r in ec2.describe_instances(Filters=[
        {"Name": "tag:hanat:group", "Values": [group]},
        {"Name": "instance-state-name", "Values": ["pending", "running"]}])["Reservations"]
        for i in r["Instances"]]
    nats = {}
    for z, zi in zones.items():
        mine = [i for i in found if i.get("SubnetId") == zi["public"]]
        check(f"{group}: one NAT tagged hanat:group in {zi['az']}'s public subnet",
              len(mine) == 1 and mine[0]["Placement"]["AvailabilityZone"] == zi["az"],
              [(i["InstanceId"], i.get("SubnetId")) for i in found])
        if mine:
            nats[z] = mine[0]

    # The launch template as stored: what EC2 applies at launch (moto does not apply
    # all of it to the instances; see the module docstring).
    v = ec2.describe_launch_template_versions(
        LaunchTemplateId=resources["NatLaunchTemplate"])["LaunchTemplateVersions"]
    data = v[-1]["LaunchTemplateData"]
    specs = {s["ResourceType"]: {t["Key"]: t["Value"] for t in s["Tags"]}
             for s in data.get("TagSpecifications", [])}
    for kind in ("instance", "network-interface"):
        check(f"{group}: launch template tags {kind} hanat:group={group}",
              specs.get(kind, {}).get("hanat:group") == group, specs)
    nic = (data.get("NetworkInterfaces") or [{}])[0]
    check(f"{group}: launch template puts the NAT in the stack's security group",
          nic.get("Groups") == [outputs.get("SecurityGroupId")], nic)
    check(f"{group}: launch template requires IMDSv2 with hop limit 1",
          data.get("MetadataOptions", {}).get("HttpTokens") == "required" and
          data.get("MetadataOptions", {}).get("HttpPutResponseHopLimit") == 1,
          data.get("MetadataOptions"))
    check(f"{group}: launch template carries the instance profile",
          resources.get("NatInstanceProfile", "?") in
          data.get("IamInstanceProfile", {}).get("Arn", ""), data.get("IamInstanceProfile"))

    user_data = base64.b64decode(data.get("UserData", "")).decode()
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(user_data)
        ud_path = f.name
    try:
        r = subprocess.run([sys.executable, CLOUD_INIT_TEST, hanatd, ud_path],
                           capture_output=True, text=True, timeout=120)
    finally:
        os.unlink(ud_path)
    check(f"{group}: the rendered user data passes cloud_init_test.py", r.returncode == 0,
          r.stdout + r.stderr)
    check(f"{group}: the user data names the group and the package URL",
          f'name = "{group}"' in user_data and params["HanatPackageUrl"] in user_data,
          user_data)
    addresses = {a["AllocationId"]: a for a in ec2.describe_addresses()["Addresses"]}
    if eips:
        for z, zi in zones.items():
            alloc = resources.get(f"Eip{z.upper()}")
            alloc_id = next((a for a, x in addresses.items() if x["PublicIp"] == alloc), alloc)
            check(f"{group}: the user data associates zone {z}'s Elastic IP in its subnet",
                  f'"{zi["public"]}") alloc="{alloc_id}"' in user_data and
                  alloc_id in addresses, user_data)
    else:
        check(f"{group}: no Elastic IP, none associated in the user data",
              not any(resources.get(f"Eip{z.upper()}") for z in "abc") and
              'alloc="eipalloc' not in user_data, user_data)

    # The role and its policy, as IAM holds them.
    policy = json.loads(json.dumps(json.load(open(POLICY))).replace("REPLACE-WITH-GROUP",
                                                                     group))
    got = iam.get_role_policy(RoleName=resources["NatRole"], PolicyName="hanat")
    doc = got["PolicyDocument"]
    if isinstance(doc, str):
        # moto keeps a policy that CloudFormation passed as a dict in its Python repr.
        try:
            doc = json.loads(doc)
        except ValueError:
            doc = ast.literal_eval(doc)
    check(f"{group}: the role's policy is conf/iam-policy.json for the group", doc == policy,
          json.dumps(doc, indent=1))
    profile = iam.get_instance_profile(InstanceProfileName=resources["NatInstanceProfile"])
    check(f"{group}: the instance profile holds the role",
          [r["RoleName"] for r in profile["InstanceProfile"]["Roles"]] ==
          [resources["NatRole"]], profile["InstanceProfile"]["Roles"])

    sg = ec2.describe_security_groups(GroupIds=[outputs["SecurityGroupId"]])["SecurityGroups"][0]
    perms = sg["IpPermissions"]

    def from_self(proto, port):
        return any(p["IpProtocol"] == proto and p.get("FromPort") == port and
                   any(u["GroupId"] == sg["GroupId"] for u in p["UserIdGroupPairs"])
                   for p in perms)
    check(f"{group}: security group in the VPC, ICMP and TCP 4790 between the NATs, all "
          "from the private range",
          sg["VpcId"] == net["vpc"] and from_self("icmp", -1) and from_self("tcp", 4790) and
          any(p["IpProtocol"] == "-1" and
              any(r["CidrIp"] == net["cidr"] for r in p["IpRanges"]) for p in perms), json.dumps(perms, indent=1))
    want = ("aws ec2 create-tags --resources " +
            " ".join(z["table"] for z in zones.values()) +
            f" --tags Key=hanat:group,Value={group}")
    check(f"{group}: the RouteTableTagCommand output tags every private route table",
          outputs.get("RouteTableTagCommand") == want, outputs)
    return nats


# ---- hanatd plan, as the zone-A NAT -----------------------------------------------------

def run_plan(moto, hanatd, workdir, group, net, nats, resources):
    ec2 = moto.client("ec2")
    sts = moto.client("sts")
    me = nats["a"]
    eni = next(n for n in me["NetworkInterfaces"] if n["Attachment"]["DeviceIndex"] == 0)
    iface = ec2.describe_network_interfaces(
        NetworkInterfaceIds=[eni["NetworkInterfaceId"]])["NetworkInterfaces"][0]
    role_arn = f"arn:aws:iam::123456789012:role/{resources['NatRole']}"
    c = sts.assume_role(RoleArn=role_arn, RoleSessionName=me["InstanceId"],
                        DurationSeconds=3600)["Credentials"]
    d = os.path.join(workdir, group)
    os.makedirs(d)
    info = {"address": "127.0.0.1", "port": 0, "instance_id": me["InstanceId"],
            "availability_zone": net["zones"]["a"]["az"], "region": REGION,
            "mac": iface["MacAddress"], "eni_id": eni["NetworkInterfaceId"],
            "subnet_id": net["zones"]["a"]["public"], "subnet_cidr": net["zones"]["a"]["public_cidr"],
            "vpc_id": net["vpc"], "vpc_cidr": net["cidr"],
            "local_ipv4": me["PrivateIpAddress"], "role": resources["NatRole"],
            "credentials": {"AccessKeyId": c["AccessKeyId"],
                            "SecretAccessKey": c["SecretAccessKey"],
                            "Token": c["SessionToken"],
                            "Expiration": c["Expiration"].strftime("%Y-%m-%dT%H:%M:%SZ")},
            "control": os.path.join(d, "imds-control.json"),
            "log": os.path.join(d, "imds.log")}
    with open(os.path.join(d, "imds-info.json"), "w") as f:
        json.dump(info, f)
    imds = subprocess.Popen([sys.executable, "-m", "hanatlab.imds", "--info",
                             os.path.join(d, "imds-info.json")],
                            cwd=os.path.join(ROOT, "tests", "e2e"),
                            stdout=subprocess.DEVNULL,
                            stderr=open(os.path.join(d, "imds.err"), "w"),
                            preexec_fn=die_with_parent)
    try:
        def imds_port():
            if imds.poll() is not None:
                raise RuntimeError("the fake IMDS exited: " +
                                   open(os.path.join(d, "imds.err")).read())
            if not os.path.exists(info["log"]):
                return None
            for line in open(info["log"]):
                rec = json.loads(line)
                if rec.get("event") == "listening":
                    return rec["port"]
            return None
        port = deadline_poll("the fake IMDS to listen", imds_port, 10)
        conf = os.path.join(d, "hanat.toml")
        with open(conf, "w") as f:
            f.write(f'[group]\nname = "{group}"\n'
                    f'[nat]\negress_interface = "ens5"\n'
                    f'[status]\nsocket = "{os.path.join(d, "hanatd.sock")}"\n'
                    f'[ec2]\nendpoint = "{moto.endpoint}"\n'
                    f'metadata_endpoint = "http://127.0.0.1:{port}"\n'
                    'credentials = "instance-role"\n')
        r = subprocess.run([hanatd, "plan", "--config", conf], capture_output=True, text=True,
                           timeout=60)
    finally:
        imds.terminate()
        imds.wait(10)
    out = r.stdout
    if not check(f"{group}: hanatd plan exits 0", r.returncode == 0, r.stdout + r.stderr):
        return
    check(f"{group}: plan runs as the zone-A NAT",
          f"this host {me['InstanceId']} in {net['zones']['a']['az']}" in out, out)
    check(f"{group}: plan finds every NAT of the group",
          f"members ({len(nats)}):" in out and
          all(n["InstanceId"] in out for n in nats.values()), out)
    check(f"{group}: plan sees every private route table",
          f"route tables ({len(net['zones'])}):" in out, out)
    rows = {}
    for line in out.splitlines():
        f = line.split()
        if f and f[0].startswith("rtb-") and len(f) >= 5:
            rows[f[0]] = f
    for z, zi in net["zones"].items():
        nat = nats.get(z)
        eni_z = next((n["NetworkInterfaceId"] for n in (nat or {}).get("NetworkInterfaces", [])
                      if n["Attachment"]["DeviceIndex"] == 0), "?")
        row = rows.get(zi["table"])
        check(f"{group}: plan allocates {zi['table']} ({zi['az']}) to the NAT of its zone",
              row is not None and row[1] == zi["az"] and row[-1] == eni_z,
              f"want {eni_z}; row {row}\n{out}")
    check(f"{group}: the zone-A NAT would create its table's default route",
          f"CreateRoute {net['zones']['a']['table']} 0.0.0.0/0: (no route) -> "
          f"{eni['NetworkInterfaceId']}" in out, out)


def main():
    if len(sys.argv) != 2:
        print("usage: cloudformation_test.py HANATD")
        return 2
    hanatd = sys.argv[1]
    try:
        import yaml  # noqa: F401
    except ImportError:
        print("FAIL: PyYAML is missing (python3-yaml); the template is YAML")
        return 1
    text = open(TEMPLATE, encoding="utf-8").read()
    t = load_template(text)
    check_template(t)
    lint_template()

    try:
        import boto3  # noqa: F401
        import moto.server  # noqa: F401
    except ImportError as e:
        print(f"SKIP: the deployment needs boto3 and moto ({e}); they ship with the machine "
              "image's python3 (see scripts/deps)")
        return 1 if failures else 77

    # moto resolves the ImageId default even when a value is given, and refuses
    # parameters under /aws/: deploy a copy whose default is a parameter made here.
    test_param = "/hanat-test/debian-12-amd64"
    deployed = text.replace(f"Default: {DEBIAN_AMI_PARAM}", f"Default: {test_param}")
    check("the copy for moto differs only in the ImageId default",
          deployed != text and load_template(deployed)["Resources"] == t["Resources"])

    # ctest ends a test past its timeout with SIGTERM: leave through the finally below, so
    # that moto_server and the fake IMDS do not outlive the test.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: sys.exit(1))
    workdir = tempfile.mkdtemp(prefix="hanat-cfn-")
    moto = Moto(workdir)
    try:
        ec2 = moto.client("ec2")
        ami = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
        moto.client("ssm").put_parameter(Name=test_param, Value=ami, Type="String",
                                                DataType="aws:ec2:image")

        for group, zones, eips in (("hanat-two", "ab", False), ("hanat-three", "abc", True)):
            net = make_network(ec2, group, zones, base=0 if group == "hanat-two" else 1)
            created, params, resources, outputs = deploy(moto, deployed, group, net, eips)
            if not created:
                break
            nats = check_stack(moto, hanatd, group, net, params, resources, outputs, eips)
            if len(nats) == len(zones):
                run_plan(moto, hanatd, workdir, group, net, nats, resources)
    finally:
        moto.stop()
        if failures or sys.exc_info()[0] is not None:
            print(f"moto_server log: {moto.log} (kept)")
        else:
            subprocess.run(["rm", "-rf", workdir], check=False)
    print(f"{len(failures)} failure(s)" if failures else "all checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
