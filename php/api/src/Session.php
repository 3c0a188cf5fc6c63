<?php

declare(strict_types=1);

namespace TaskManager\Api;

/**
 * Dashboard sessions. The cookie holds a random id, its expiry and an HMAC over both, keyed
 * with a random key kept in the state directory: a leaked cookie says nothing about the
 * password (it is not a key of the MAC), and a forged or stretched one fails the MAC. The id
 * is also recorded server-side until it expires, so signing out ends it for good (a copied
 * cookie stops working), and a changed password ends every session (its fingerprint is part
 * of what is signed).
 *
 * Over HTTPS the cookie is `__Host-tm_dashboard`, Secure: browsers then refuse it from plain
 * HTTP and from other hosts of the domain; over plain HTTP it is `tm_dashboard`.
 */
final class Session
{
    public const LIFETIME = 8 * 3600;
    private const NAME = 'tm_dashboard';

    public function __construct(private readonly StateDir $state, private readonly string $secret)
    {
    }

    public static function cookieName(Peer $peer): string
    {
        return $peer->https ? '__Host-' . self::NAME : self::NAME;
    }

    /** Opens a session: the Set-Cookie value. */
    public function open(Peer $peer): string
    {
        $id = rtrim(strtr(base64_encode(random_bytes(16)), '+/', '-_'), '=');
        $expires = time() + self::LIFETIME;
        $this->store()->update($id, static fn (): array => ['time' => $expires, 'a' => 0, 'b' => 0]);
        return $this->cookie($peer, "$id.$expires." . $this->sign($id, $expires), self::LIFETIME);
    }

    /** Whether the request carries a live session. */
    public function valid(Request $request, Peer $peer): bool
    {
        return $this->idOf($request, $peer) !== null;
    }

    /** Ends the request's session, if it has one: the Set-Cookie value that clears it. */
    public function close(Request $request, Peer $peer): string
    {
        $id = $this->idOf($request, $peer);
        if ($id !== null) {
            $this->store()->update($id, static fn (): ?array => null);
        }
        return $this->cookie($peer, '', 0);
    }

    private function idOf(Request $request, Peer $peer): ?string
    {
        $parts = explode('.', $request->cookies[self::cookieName($peer)] ?? '');
        if (count($parts) !== 3 || !ctype_digit($parts[1]) || strlen($parts[1]) > 12) {
            return null;
        }
        [$id, $expires, $signature] = $parts;
        $expires = (int) $expires;
        $now = time();
        if ($expires <= $now || $expires > $now + self::LIFETIME
            || !hash_equals($this->sign($id, $expires), $signature)) {
            return null;
        }
        $live = $this->store()->update($id, static fn (?array $record): ?array => $record);
        return $live !== null && $live['time'] === $expires ? $id : null;
    }

    private function sign(string $id, int $expires): string
    {
        $message = $id . '|' . $expires . '|' . hash('sha256', $this->secret);
        return hash_hmac('sha256', $message, $this->state->secretKey());
    }

    /** 4096 live sessions at most; past that the one closest to expiry is ended. */
    private function store(): SlotFile
    {
        return new SlotFile($this->state->file('sessions.bin'), 512);
    }

    private function cookie(Peer $peer, string $value, int $maxAge): string
    {
        return sprintf('%s=%s; Max-Age=%d; Path=/; HttpOnly; SameSite=Strict%s',
            self::cookieName($peer), $value, $maxAge, $peer->https ? '; Secure' : '');
    }
}
