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


def seed(lab, api_ns, endpoint, nats, hosts, zones_used, zone_index):
    """Creates the VPC objects; fills nats[i] (instance_id, eni_id, mac, subnet_id,
    subnet_cidr, eip, _role_credentials) and hosts[i] (subnet_id, route_table) in place.
    Returns {"vpc_id", "zones", "route_tables", "credentials"}."""
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
        vpc = ec2.create_vpc(CidrBlock="198.18.0.0/16", TagSpecifications=_tags(
            "vpc", Name=f"{lab.id}-vpc"))["Vpc"]["VpcId"]
        igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
        ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
        public_rt = ec2.create_route_table(VpcId=vpc, TagSpecifications=_tags(
            "route-table", Name=f"{lab.id}-public"))["RouteTable"]["RouteTableId"]
        ec2.create_route(RouteTableId=public_rt, DestinationCidrBlock="0.0.0.0/0",
                         GatewayId=igw)
        zones = []
        for z in zones_used:
            zi = zone_index[z]
            az = lab.region + z
            pub = ec2.create_subnet(VpcId=vpc, CidrBlock=f"198.18.{100 + zi}.0/24",
                                    AvailabilityZone=az, TagSpecifications=_tags(
                                        "subnet", Name=f"{lab.id}-nat-{z}"))["Subnet"]
            ec2.associate_route_table(RouteTableId=public_rt, SubnetId=pub["SubnetId"])
            zone = {"letter": z, "name": az, "nat_subnet": {"id": pub["SubnetId"],
                                                            "cidr": pub["CidrBlock"]}}
            if z in ("a", "b"):
                priv = ec2.create_subnet(VpcId=vpc, CidrBlock=f"198.18.{zi}.0/24",
                                         AvailabilityZone=az, TagSpecifications=_tags(
                                             "subnet", Name=f"{lab.id}-private-{z}"))["Subnet"]
                zone["private_subnet"] = {"id": priv["SubnetId"], "cidr": priv["CidrBlock"]}
            zones.append(zone)
        by_letter = {z["letter"]: z for z in zones}

        for nat in nats:
            zone = by_letter[nat["zone_letter"]]
            inst = ec2.run_instances(
                ImageId="ami-12c6146b", InstanceType="t3.micro", MinCount=1, MaxCount=1,
                SubnetId=zone["nat_subnet"]["id"], PrivateIpAddress=nat["private_address"],
                TagSpecifications=_tags("instance", Name=f"{lab.id}-{nat['name']}",
                                        **{"hanat:group": g}))["Instances"][0]
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

        route_tables = []
        for z in ("a", "b"):
            zone = by_letter[z]
            home = [n for n in nats if n["zone_letter"] == z] or nats
            rt = ec2.create_route_table(VpcId=vpc, TagSpecifications=_tags(
                "route-table", Name=f"{lab.id}-private-{z}",
                **{"hanat:group": g, "hanat:zone": zone["name"]}))["RouteTable"]["RouteTableId"]
            ec2.associate_route_table(RouteTableId=rt, SubnetId=zone["private_subnet"]["id"])
            ec2.create_route(RouteTableId=rt, DestinationCidrBlock="0.0.0.0/0",
                             NetworkInterfaceId=home[0]["eni_id"])
            zone["route_table"] = rt
            route_tables.append({"id": rt, "zone": zone["name"], "zone_letter": z,
                                 "subnets": [zone["private_subnet"]["id"]],
                                 "initial_target": home[0]["eni_id"],
                                 "initial_nat": home[0]["name"]})
        for h in hosts:
            zone = by_letter[h["zone_letter"]]
            h["subnet_id"] = zone["private_subnet"]["id"]
            h["route_table"] = zone["route_table"]

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
            c = sts.assume_role(RoleArn=f"arn:aws:iam::{lab_account()}:role/hanat-nat",
                                RoleSessionName=f"{lab.id}-{nat['name']}",
                                DurationSeconds=43200)["Credentials"]
            nat["_role_credentials"] = {
                "AccessKeyId": c["AccessKeyId"], "SecretAccessKey": c["SecretAccessKey"],
                "Token": c["SessionToken"],
                "Expiration": c["Expiration"].strftime("%Y-%m-%dT%H:%M:%SZ")}
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
            "public_route_table": public_rt, "internet_gateway": igw}


def lab_account():
    return "123456789012"
