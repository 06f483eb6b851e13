#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Seeds a fresh moto_server for the ec2 integration tests and turns signature checking on.

Usage: seed_moto.py http://127.0.0.1:PORT  -> prints one JSON object with the ids and the IAM
access key the test must sign with. Loopback only; numeric addresses; no name lookups.
"""
import json
import os
import sys
import urllib.request

import boto3

endpoint = sys.argv[1]
region = "us-east-1"
os.environ.setdefault("AWS_ACCESS_KEY_ID", "seed")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "seed")
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"

iam = boto3.client("iam", endpoint_url=endpoint, region_name=region)
ec2 = boto3.client("ec2", endpoint_url=endpoint, region_name=region)

iam.create_user(UserName="hanat")
iam.put_user_policy(
    UserName="hanat",
    PolicyName="ec2",
    PolicyDocument=json.dumps({"Version": "2012-10-17",
                               "Statement": [{"Effect": "Allow", "Action": "ec2:*",
                                              "Resource": "*"}]}))
key = iam.create_access_key(UserName="hanat")["AccessKey"]

vpc = ec2.create_vpc(CidrBlock="198.18.0.0/16")["Vpc"]["VpcId"]
sub_a = ec2.create_subnet(VpcId=vpc, CidrBlock="198.18.1.0/24",
                          AvailabilityZone="us-east-1a")["Subnet"]["SubnetId"]
sub_b = ec2.create_subnet(VpcId=vpc, CidrBlock="198.18.2.0/24",
                          AvailabilityZone="us-east-1b")["Subnet"]["SubnetId"]
igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)

rtbs = []
for i, sub in enumerate([sub_a, sub_b]):
    rtb = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    ec2.associate_route_table(RouteTableId=rtb, SubnetId=sub)
    ec2.create_tags(Resources=[rtb], Tags=[{"Key": "hanat:group", "Value": "it"}])
    rtbs.append(rtb)

image = ec2.describe_images()["Images"][0]["ImageId"]
run = ec2.run_instances(ImageId=image, MinCount=2, MaxCount=2, SubnetId=sub_a,
                        InstanceType="t3.micro",
                        TagSpecifications=[{"ResourceType": "instance",
                                            "Tags": [{"Key": "hanat:group", "Value": "it"}]}])
nats = [i["InstanceId"] for i in run["Instances"]]
# Extra instances, one reservation each: one to stop/start/terminate, and enough
# reservations (moto pages DescribeInstances by reservation) for two pages of 5.
extra = [ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, SubnetId=sub_b,
                           InstanceType="t3.micro")["Instances"][0]["InstanceId"]
         for _ in range(6)]

primary_enis = {}
for r in ec2.describe_instances(InstanceIds=nats)["Reservations"]:
    for inst in r["Instances"]:
        primary_enis[inst["InstanceId"]] = inst["NetworkInterfaces"][0]["NetworkInterfaceId"]

floating = ec2.create_network_interface(SubnetId=sub_a)["NetworkInterface"]["NetworkInterfaceId"]
eip = ec2.allocate_address(Domain="vpc")
eip_b = ec2.allocate_address(Domain="vpc")
natgw = ec2.create_nat_gateway(SubnetId=sub_a,
                               AllocationId=eip_b["AllocationId"])["NatGateway"]["NatGatewayId"]

# 200 route tables in a VPC of their own (the other tests' views stay as they were), each
# with 0.0.0.0/0 on the second NAT's ENI: the 200-table failover moves them all to the first.
bench_vpc = ec2.create_vpc(CidrBlock="198.19.0.0/16")["Vpc"]["VpcId"]
bench_rtbs = []
for i in range(200):
    rtb = ec2.create_route_table(VpcId=bench_vpc)["RouteTable"]["RouteTableId"]
    ec2.create_route(RouteTableId=rtb, DestinationCidrBlock="0.0.0.0/0",
                     NetworkInterfaceId=primary_enis[nats[1]])
    bench_rtbs.append(rtb)

# From here on every request must be signed by an IAM identity (MOTO.md).
req = urllib.request.Request(endpoint + "/moto-api/reset-auth", data=b"0",
                             headers={"Content-Type": "text/plain"}, method="POST")
urllib.request.urlopen(req, timeout=10).read()

print(json.dumps({
    "access_key_id": key["AccessKeyId"],
    "secret_access_key": key["SecretAccessKey"],
    "region": region,
    "vpc": vpc,
    "subnets": [sub_a, sub_b],
    "route_tables": rtbs,
    "igw": igw,
    "nat_instances": nats,
    "extra_instances": extra,
    "primary_enis": [primary_enis[i] for i in nats],
    "floating_eni": floating,
    "eip_allocation": eip["AllocationId"],
    "eip_public_ip": eip["PublicIp"],
    "nat_gateway": natgw,
    "bench_route_tables": bench_rtbs,
}))
