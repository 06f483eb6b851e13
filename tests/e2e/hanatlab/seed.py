# SPDX-License-Identifier: GPL-2.0-or-later
"""Seeds moto with the lab's VPC so that EC2's view matches the lab's addresses, then turns
on moto's signature checking (MOTO.md: POST /moto-api/reset-auth with body 0) so every
later call — the fabric's, the tests', hanatd's — must be signed with the lab's key."""

import json
import urllib.request

from hanatlab import netns
from hanatlab.netns import LabError

POLICY_EC2 = {"Version": "2012-10-17",
              "Statement": [{"Effect": "Allow", "Action": ["ec2:*"], "Resource": "*"}]}
POLICY_USER = {"Version": "2012-10-17",
               "Statement": [{"Effect": "Allow", "Action": ["ec2:*", "sts:AssumeRole"],
                              "Resource": "*"}]}
# On EC2 the trust principal would be {"Service": "ec2.amazonaws.com"}; moto 5.2.1 crashes
# (HTTP 500, TypeError in access_control._check_principal) on a Service principal when the
# lab's user assumes the role, so the lab trusts that user instead.
TRUST = {"Version": "2012-10-17",
         "Statement": [{"Effect": "Allow",
                        "Principal": {"AWS": "arn:aws:iam::123456789012:user/hanat"},
                        "Action": "sts:AssumeRole"}]}


def _tags(kind, **tags):
    return [{"ResourceType": kind, "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}]


def launch_nat(ec2, lab, nat, zone):
    """Runs NAT `nat`'s instance in `zone`'s NAT subnet at its private address (tag
    hanat:group) with an Elastic IP on its ENI; fills nat (instance_id, eni_id, mac,
    subnet_id, subnet_cidr, eip) in place. Used at set-up and for an added NAT."""
    inst = ec2.run_instances(
        ImageId="ami-12c6146b", InstanceType="t3.micro", MinCount=1, MaxCount=1,
        SubnetId=zone["nat_subnet"]["id"], PrivateIpAddress=nat["private_address"],
        TagSpecifications=_tags("instance", Name=f"{lab.id}-{nat['name']}",
                                **{"hanat:group": lab.group}))["Instances"][0]
    eni = inst["NetworkInterfaces"][0]
    if inst.get("PrivateIpAddress") != nat["private_address"]:
        raise LabError(f"moto gave {nat['name']} address {inst.get('PrivateIpAddress')}, "
                       f"not {nat['private_address']}")
    nat.update(instance_id=inst["InstanceId"], eni_id=eni["NetworkInterfaceId"],
               mac=eni["MacAddress"], subnet_id=zone["nat_subnet"]["id"],
               subnet_cidr=zone["nat_subnet"]["cidr"])
    alloc = ec2.allocate_address(Domain="vpc")
    assoc = ec2.associate_address(AllocationId=alloc["AllocationId"],
                                  NetworkInterfaceId=nat["eni_id"])
    # moto draws EIPs from 127.0.0.0/8: ids for API tests, never an address to use.
    nat["eip"] = {"allocation_id": alloc["AllocationId"], "public_ip": alloc["PublicIp"],
                  "association_id": assoc["AssociationId"]}


def initial_nats(tables, home):
    """Which NAT each of a zone's route tables starts on: the allocation hanatd computes
    (DESIGN rule 1; core/engine/allocation.cc) — the zone's tables in id order dealt
    round-robin to its NATs in instance-id order — so that a start-up writes nothing.
    tables: ids; home: NAT dicts of the zone. Returns {table id: nat}."""
    members = sorted(home, key=lambda n: n["instance_id"])
    return {t: members[i % len(members)] for i, t in enumerate(sorted(tables))}


def seed(lab, api_ns, endpoint, nats, hosts, zones_used, zone_index, tables_per_zone=1,
         tag_everything=False):
    """Creates the VPC objects; fills nats[i] (instance_id, eni_id, mac, subnet_id,
    subnet_cidr, eip, _role_credentials) and hosts[i] (subnet_id, route_table; with
    tag_everything also instance_id, eni_id) in place. Returns {"vpc_id", "zones",
    "route_tables", "credentials", "public_route_table", "internet_gateway",
    "transit_gateway", "nat_gateway"}.

    Beside the NATs the VPC has what a real one has: a transit gateway attached to the
    private subnets and a NAT Gateway in zone a's public subnet, for tables an operator
    points elsewhere. tag_everything: every resource of the VPC carries the group tag, as
    an IaC module's default tags put it there — the VPC, subnets, the internet gateway, the
    public route table (its default route to the internet gateway), the transit and NAT
    gateways, and the private hosts as tagged instances at their addresses (they answer
    ICMP and run no hanatd)."""
    import boto3
    import botocore.config

    conf = botocore.config.Config(retries={"max_attempts": 3}, connect_timeout=2,
                                  read_timeout=20)
    # Before reset-auth moto checks no signature; the key below is a placeholder.
    anon = dict(endpoint_url=endpoint, region_name=lab.region, aws_access_key_id="lab-setup",
                aws_secret_access_key="lab-setup", config=conf)
    with netns.in_netns(api_ns):
        ec2 = boto3.client("ec2", **anon)
        iam = boto3.client("iam", **anon)
        g = lab.group
        gt = {"hanat:group": g} if tag_everything else {}
        vpc = ec2.create_vpc(CidrBlock="198.18.0.0/16", TagSpecifications=_tags(
            "vpc", Name=f"{lab.id}-vpc", **gt))["Vpc"]["VpcId"]
        igw = ec2.create_internet_gateway(TagSpecifications=_tags(
            "internet-gateway", Name=f"{lab.id}-igw", **gt))["InternetGateway"][
                "InternetGatewayId"]
        ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
        public_rt = ec2.create_route_table(VpcId=vpc, TagSpecifications=_tags(
            "route-table", Name=f"{lab.id}-public", **gt))["RouteTable"]["RouteTableId"]
        ec2.create_route(RouteTableId=public_rt, DestinationCidrBlock="0.0.0.0/0",
                         GatewayId=igw)
        zones = []
        for z in zones_used:
            zi = zone_index[z]
            az = lab.region + z
            pub = ec2.create_subnet(VpcId=vpc, CidrBlock=f"198.18.{100 + zi}.0/24",
                                    AvailabilityZone=az, TagSpecifications=_tags(
                                        "subnet", Name=f"{lab.id}-nat-{z}", **gt))["Subnet"]
            ec2.associate_route_table(RouteTableId=public_rt, SubnetId=pub["SubnetId"])
            zone = {"letter": z, "name": az, "nat_subnet": {"id": pub["SubnetId"],
                                                            "cidr": pub["CidrBlock"]}}
            if z in ("a", "b"):
                subs = []
                for t in range(tables_per_zone):
                    suffix = f"{t + 1}" if tables_per_zone > 1 else ""
                    priv = ec2.create_subnet(
                        VpcId=vpc, CidrBlock=private_cidr(zi, t), AvailabilityZone=az,
                        TagSpecifications=_tags("subnet", Name=f"{lab.id}-private-{z}{suffix}",
                                                **gt))["Subnet"]
                    subs.append({"id": priv["SubnetId"], "cidr": priv["CidrBlock"]})
                zone["private_subnet"] = subs[0]
                zone["private_subnets"] = subs
            zones.append(zone)
        by_letter = {z["letter"]: z for z in zones}

        for nat in nats:
            launch_nat(ec2, lab, nat, by_letter[nat["zone_letter"]])

        route_tables = []
        for z in ("a", "b"):
            zone = by_letter[z]
            home = [n for n in nats if n["zone_letter"] == z]
            ids = []
            for t, sub in enumerate(zone["private_subnets"]):
                suffix = f"{t + 1}" if tables_per_zone > 1 else ""
                rt = ec2.create_route_table(VpcId=vpc, TagSpecifications=_tags(
                    "route-table", Name=f"{lab.id}-private-{z}{suffix}",
                    **{"hanat:group": g, "hanat:zone": zone["name"]}))["RouteTable"][
                        "RouteTableId"]
                ec2.associate_route_table(RouteTableId=rt, SubnetId=sub["id"])
                ids.append(rt)
            # A zone without a NAT starts on the first NAT (hanatd may move it).
            start = initial_nats(ids, home) if home else {t: nats[0] for t in ids}
            for t, (rt, sub) in enumerate(zip(ids, zone["private_subnets"])):
                nat = start[rt]
                ec2.create_route(RouteTableId=rt, DestinationCidrBlock="0.0.0.0/0",
                                 NetworkInterfaceId=nat["eni_id"])
                route_tables.append({"id": rt, "zone": zone["name"], "zone_letter": z,
                                     "index": t, "subnets": [sub["id"]],
                                     "initial_target": nat["eni_id"],
                                     "initial_nat": nat["name"]})
            zone["route_table"] = ids[0]
            zone["route_table_ids"] = ids
        for h in hosts:
            zone = by_letter[h["zone_letter"]]
            t = h.get("table_index", 0)
            h["subnet_id"] = zone["private_subnets"][t]["id"]
            h["route_table"] = zone["route_table_ids"][t]
            if tag_everything:
                inst = ec2.run_instances(
                    ImageId="ami-12c6146b", InstanceType="t3.micro", MinCount=1, MaxCount=1,
                    SubnetId=h["subnet_id"], PrivateIpAddress=h["address"],
                    TagSpecifications=_tags("instance", Name=f"{lab.id}-{h['name']}",
                                            **gt))["Instances"][0]
                h.update(instance_id=inst["InstanceId"],
                         eni_id=inst["NetworkInterfaces"][0]["NetworkInterfaceId"])

        # A transit gateway attached to the private subnets (central egress, the usual
        # reason a tagged table points elsewhere), and a NAT Gateway in zone a's public
        # subnet (what an operator switches a zone to during an incident).
        tgw = ec2.create_transit_gateway(
            Description=f"{lab.id} central egress",
            TagSpecifications=_tags("transit-gateway", Name=f"{lab.id}-tgw", **gt))[
                "TransitGateway"]["TransitGatewayId"]
        tgw_att = ec2.create_transit_gateway_vpc_attachment(
            TransitGatewayId=tgw, VpcId=vpc,
            SubnetIds=[by_letter[z]["private_subnet"]["id"] for z in ("a", "b")])[
                "TransitGatewayVpcAttachment"]["TransitGatewayAttachmentId"]
        ngw_eip = ec2.allocate_address(Domain="vpc")["AllocationId"]
        ngw = ec2.create_nat_gateway(
            SubnetId=by_letter["a"]["nat_subnet"]["id"], AllocationId=ngw_eip,
            TagSpecifications=_tags("natgateway", Name=f"{lab.id}-natgw", **gt))[
                "NatGateway"]["NatGatewayId"]

        iam.create_user(UserName="hanat")
        iam.put_user_policy(UserName="hanat", PolicyName="hanat-ec2",
                            PolicyDocument=json.dumps(POLICY_USER))
        key = iam.create_access_key(UserName="hanat")["AccessKey"]
        iam.create_role(RoleName="hanat-nat", AssumeRolePolicyDocument=json.dumps(TRUST))
        iam.put_role_policy(RoleName="hanat-nat", PolicyName="hanat-ec2",
                            PolicyDocument=json.dumps(POLICY_EC2))

        req = urllib.request.Request(endpoint + "/moto-api/reset-auth", data=b"0",
                                     headers={"Content-Type": "text/plain"}, method="POST")
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(req, timeout=10) as r:
            body = r.read().decode()
            if r.status != 200 or '"ok"' not in body:
                raise LabError(f"moto reset-auth answered {r.status}: {body[:200]}")

        signed = dict(anon, aws_access_key_id=key["AccessKeyId"],
                      aws_secret_access_key=key["SecretAccessKey"])
        sts = boto3.client("sts", **signed)
        for nat in nats:
            nat["_role_credentials"] = assume_role(sts, lab.id, nat["name"])
        # Signatures are now checked: an unsigned or wrongly signed call must fail.
        try:
            boto3.client("ec2", **anon).describe_vpcs()
            raise LabError("moto accepted an unknown key after reset-auth")
        except LabError:
            raise
        except Exception as e:  # noqa: BLE001 - botocore ClientError, checked below
            if "AuthFailure" not in str(e):
                raise LabError(f"unexpected answer to an unknown key: {e}") from e
    return {"vpc_id": vpc, "zones": zones, "route_tables": route_tables,
            "credentials": {"access_key_id": key["AccessKeyId"],
                            "secret_access_key": key["SecretAccessKey"]},
            "public_route_table": public_rt, "internet_gateway": igw,
            "transit_gateway": {"id": tgw, "attachment_id": tgw_att},
            "nat_gateway": {"id": ngw, "subnet_id": by_letter["a"]["nat_subnet"]["id"],
                            "allocation_id": ngw_eip}}


def private_cidr(zone_index, table_index):
    """The private subnet of a zone's table_index-th route table: 198.18.<zi>.0/24 for the
    first (the lab's historic layout), 198.18.<zi + 10 t>.0/24 for the others."""
    return f"198.18.{zone_index + 10 * table_index}.0/24"


def assume_role(sts, lab_id, nat_name):
    """Role credentials for a NAT's IMDS, in IMDS's shape."""
    c = sts.assume_role(RoleArn=f"arn:aws:iam::{lab_account()}:role/hanat-nat",
                        RoleSessionName=f"{lab_id}-{nat_name}",
                        DurationSeconds=43200)["Credentials"]
    return {"AccessKeyId": c["AccessKeyId"], "SecretAccessKey": c["SecretAccessKey"],
            "Token": c["SessionToken"],
            "Expiration": c["Expiration"].strftime("%Y-%m-%dT%H:%M:%SZ")}


def lab_account():
    return "123456789012"
