<?php

declare(strict_types=1);

namespace TaskManager\Api;

/**
 * Who is asking: the client's IP address and whether it came over HTTPS.
 *
 * The address is the socket's. Only when the socket's address is a trusted proxy
 * (TRUSTED_PROXIES) does `X-Forwarded-For` count, read from the right and skipping further
 * trusted proxies, so the first untrusted address is the client; `X-Forwarded-Proto` counts
 * under the same condition. The original believed `CF-Connecting-IP`, `X-Forwarded-For` and
 * `X-Real-IP` from anyone, so any client could claim an allowed address or dodge a block.
 */
final class Peer
{
    public function __construct(public readonly string $ip, public readonly bool $https)
    {
    }

    /** @param list<string> $trustedProxies addresses or CIDR ranges */
    public static function of(Request $request, array $trustedProxies): self
    {
        $ip = $request->remoteAddr;
        $https = $request->https;
        if ($trustedProxies === [] || !self::inList($ip, $trustedProxies)) {
            return new self($ip, $https);
        }
        $chain = array_map('trim', explode(',', (string) $request->header('X-Forwarded-For')));
        foreach (array_reverse($chain) as $hop) {
            if (inet_pton($hop) === false) {
                break;      // a malformed entry: nothing left of it can be believed
            }
            $ip = $hop;
            if (!self::inList($hop, $trustedProxies)) {
                break;
            }
        }
        $proto = strtolower(trim(explode(',', (string) $request->header('X-Forwarded-Proto'))[0]));
        return new self($ip, $proto === '' ? $https : $proto === 'https');
    }

    /** Whether `$ip` is one of `$list` (exact addresses, or ranges such as 10.0.0.0/8). */
    public static function inList(string $ip, array $list): bool
    {
        $address = @inet_pton($ip);
        if ($address === false) {
            return false;
        }
        foreach ($list as $entry) {
            [$base, $bits] = array_pad(explode('/', $entry, 2), 2, null);
            $network = @inet_pton($base);
            if ($network === false || strlen($network) !== strlen($address)) {
                continue;
            }
            $bits = $bits === null ? strlen($address) * 8 : (int) $bits;
            if (self::samePrefix($address, $network, $bits)) {
                return true;
            }
        }
        return false;
    }

    private static function samePrefix(string $a, string $b, int $bits): bool
    {
        $bytes = intdiv($bits, 8);
        if (substr($a, 0, $bytes) !== substr($b, 0, $bytes)) {
            return false;
        }
        $rest = $bits % 8;
        if ($rest === 0) {
            return true;
        }
        $mask = (0xFF << (8 - $rest)) & 0xFF;
        return (ord($a[$bytes]) & $mask) === (ord($b[$bytes]) & $mask);
    }
}
