"""Realistic inbound messages built around our own tokens (bounces, replies, complaints)."""

from __future__ import annotations


def dsn(*, verp: str, failed: str, status: str = "5.1.1", action: str = "failed") -> bytes:
    """An RFC 3464 delivery status notification to our VERP address."""
    return f"""Return-Path: <>
From: Mail Delivery System <MAILER-DAEMON@mx.example.net>
To: {verp}
Subject: Undelivered Mail Returned to Sender
Auto-Submitted: auto-replied
Message-ID: <dsn-{failed}-{status}@mx.example.net>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B1"

--B1
Content-Type: text/plain

This is the mail system at host mx.example.net. Your message could not be delivered.

--B1
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net

Final-Recipient: rfc822; {failed}
Action: {action}
Status: {status}
Diagnostic-Code: smtp; 550 {status} User unknown

--B1
Content-Type: text/rfc822-headers

From: news@lists.example.test
To: {failed}
Subject: Our news

--B1--
""".replace("\n", "\r\n").encode()


def reply(*, sender: str, to: str, subject: str, body: str, msgid: str) -> bytes:
    return f"""From: Someone <{sender}>
To: {to}
Subject: {subject}
Message-ID: <{msgid}@mail.example.com>
Date: Wed, 25 Nov 2026 10:00:00 +0000
Authentication-Results: mx.lists.example.test; dkim=pass header.d=example.com; spf=pass
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8

{body}
""".replace("\n", "\r\n").encode()


def arf(*, original_list_unsubscribe: str, complainer: str) -> bytes:
    """An RFC 5965 feedback report that wraps one of our messages."""
    return f"""From: Feedback Loop <fbl@isp.example.net>
To: fbl@lists.example.test
Subject: Abuse report
Message-ID: <arf-{complainer}@isp.example.net>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="F1"

--F1
Content-Type: text/plain

This is an email abuse report.

--F1
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: ExampleFBL/1.0
Version: 1
Original-Rcpt-To: {complainer}

--F1
Content-Type: message/rfc822

From: News <news@lists.example.test>
To: {complainer}
Subject: Our news
List-Unsubscribe: {original_list_unsubscribe}
List-Unsubscribe-Post: List-Unsubscribe=One-Click
Message-ID: <orig-{complainer}@lists.example.test>

Hello! To leave, unsubscribe here.

--F1--
""".replace("\n", "\r\n").encode()
