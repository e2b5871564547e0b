#!/usr/bin/perl
# maildmarc_eval.pl: DMARC verdicts from Mail::DMARC::PurePerl (Debian
# libmail-dmarc-perl, RFC 7489 with the Public Suffix List), for
# tests/integration/test_dmarc_interop.py to compare with mxgate's.
#
# Usage: maildmarc_eval.pl --dns HOST:PORT --psl FILE
#
# Reads one JSON object per line on stdin:
#   {"id": ..., "header_from": "example.co.uk", "envelope_from": "...",
#    "source_ip": "127.0.0.1",
#    "spf":  [{"domain": ..., "scope": "mfrom"|"helo", "result": ...}],
#    "dkim": [{"domain": ..., "selector": ..., "result": ...}]}
# and writes one JSON object per line on stdout (flushed):
#   {"id": ..., "result": "pass"|"fail"|"none", "disposition": ...,
#    "reason": ["type: comment", ...], "published": {p sp pct adkim aspf
#    domain ...} or null, "org_domain": ..., "is_subdomain": 0|1,
#    "spf": ..., "dkim": ..., "error": "..." (only when it died)}
#
# All DNS goes to the server given (Net::DNS, any port): no system
# resolver, no network. The module's configuration is set in memory: the
# Public Suffix List file given, no report store, no whitelist.
#
# rand() is pinned to 0 for Mail::DMARC: RFC 7489 6.6.4 pct= sampling
# then always picks the message ("int(rand(100)) < pct" holds for pct >=
# 1), and pct=0 always falls back to the next policy lower. The verdict is
# thus a function of the input, which the comparison needs.
use strict;
use warnings;

# Only Mail::DMARC::PurePerl's rand (an imported sub overrides the
# builtin in code compiled after it); Net::DNS keeps the real one for its
# query ids.
BEGIN {
    no strict 'refs';
    *{'Mail::DMARC::PurePerl::rand'} = sub { return 0 };
}

use Getopt::Long;
use JSON::PP;
use Net::DNS::Resolver;
use Mail::DMARC::PurePerl;

my ( $dns, $psl );
GetOptions( 'dns=s' => \$dns, 'psl=s' => \$psl )
    or die "usage: $0 --dns HOST:PORT --psl FILE\n";
die "usage: $0 --dns HOST:PORT --psl FILE\n" if !$dns || !$psl;
my ( $host, $port ) = $dns =~ /^\[?([^\]]+?)\]?:(\d+)$/
    or die "--dns wants HOST:PORT\n";
die "$psl: not an absolute path to a readable file\n"
    if $psl !~ m{^/} || !-r $psl;

my $resolver = Net::DNS::Resolver->new(
    nameservers => [$host],
    port        => $port,
    recurse     => 1,
    dnsrch      => 0,
    defnames    => 0,
    retry       => 2,
    tcp_timeout => 3,
    udp_timeout => 3,
);
my %config = (
    dns          => { public_suffix_list => $psl, timeout => 3 },
    report_store => { auto_save => 0 },
    smtp         => {},
);

my $json = JSON::PP->new->canonical->utf8;
$| = 1;

sub evaluate {
    my ($in) = @_;
    my $d = Mail::DMARC::PurePerl->new();
    $d->{config} = \%config;
    $d->set_resolver($resolver);
    $d->source_ip( $in->{source_ip} || '127.0.0.1' );
    $d->header_from( $in->{header_from} );
    $d->envelope_from( $in->{envelope_from} ) if $in->{envelope_from};
    $d->spf( $in->{spf} || [] );
    $d->dkim( $in->{dkim} ) if $in->{dkim} && @{ $in->{dkim} };
    my $r   = $d->validate();
    my $pub = eval { $r->published };
    my %out = (
        result       => $r->result,
        disposition  => $r->disposition,
        reason       => [ map { join ': ', grep {defined} $_->type,
                                $_->comment } @{ $r->reason || [] } ],
        org_domain   => $d->get_organizational_domain( $in->{header_from} ),
        is_subdomain => $d->is_subdomain ? 1 : 0,
        spf          => $r->spf,
        dkim         => $r->dkim,
        published    => undef,
    );
    if ($pub) {
        $out{published} = {
            map { defined $pub->{$_} ? ( $_ => "$pub->{$_}" ) : () }
                qw/ domain v p sp np pct adkim aspf t psd /
        };
    }
    return \%out;
}

while ( my $line = <STDIN> ) {
    next if $line !~ /\S/;
    my $in  = $json->decode($line);
    my $out = eval { evaluate($in) };
    $out = { error => ( $@ || 'unknown error' ) } if !$out;
    $out->{id} = $in->{id};
    print $json->encode($out), "\n";
}
