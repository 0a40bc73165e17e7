#!/usr/bin/perl
# CGI.pm upload: answers the sha256 and size of the uploaded field `file`.
use strict;
use warnings;
use CGI;
use Digest::SHA;

$CGI::POST_MAX = 64 * 1024 * 1024;
my $q = CGI->new;
my $fh = $q->upload('file');
print $q->header(-type => 'text/plain');
if (!$fh) {
    print 'no upload: ', ($q->cgi_error // 'none'), "\n";
    exit 0;
}
my $sha = Digest::SHA->new(256);
$sha->addfile($fh);
my $size = -s $fh;
print $sha->hexdigest, " $size\n";
