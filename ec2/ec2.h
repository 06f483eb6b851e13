// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// DOC: ec2/ — the EC2 Query API client hanatd uses for every decision it acts on.
//
// Pure pieces, testable without a loop:
//   sigv4.h   SigV4 header signing (OpenSSL SHA-256/HMAC), checked against AWS's test suite
//   form.h    Query parameters and their x-www-form-urlencoded body (SDK/urlencode style)
//   api.h     one request struct per action (params, throttling bucket, write key) and the
//             typed reply parsed by expat (xml.h); both EC2 error shapes -> Ec2Error
//   error.h   Ec2Error and the retry classification (throttling, 5xx, transport: retry;
//             client errors such as InvalidRouteTableID.NotFound or AuthFailure: final)
//   pacing.h  token buckets mirroring EC2's buckets, capped jittered exponential backoff
// On the libuv loop:
//   http_client.h  curl multi driven by uv::Poll + uv::Timer (STYLE.md C3)
//   client.h       ec2::Client: priorities, pacing, retries, pagination, superseded writes
//   credentials.h  static / environment credentials; imds.h: IMDSv2 + instance-role
//                  credentials that refresh before Expiration
// Nothing here logs above debug or reads config: the daemon maps its TOML into
// ClientOptions / ImdsOptions and decides what to log.

#include "ec2/api.h"
#include "ec2/client.h"
#include "ec2/credentials.h"
#include "ec2/error.h"
#include "ec2/imds.h"
#include "ec2/sigv4.h"
