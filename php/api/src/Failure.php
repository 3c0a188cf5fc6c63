<?php

declare(strict_types=1);

namespace TaskManager\Api;

use TaskManager\Code;
use TaskManager\Exception\TaskManagerException;

/** How a library error reaches an HTTP client. */
final class Failure
{
    /**
     * Caller errors keep the library's message (it names the field and the rule); server-side
     * failures get a fixed text with the error's name, and the message goes to the log only.
     */
    public static function fromLibrary(TaskManagerException $e): HttpError
    {
        return match ($e->getTmCode()) {
            Code::NULL_PARAMETER, Code::INVALID_ARGUMENT, Code::INVALID_SCHEMA, Code::PAYLOAD_TOO_LARGE => HttpError::badRequest(self::callerText($e)),
            Code::VALIDATION_FAILED => HttpError::badRequest(
                'Parameter validation failed: ' . $e->getMessage(),
                array_values((array) ($e->getDetails()['violations'] ?? [])),
            ),
            Code::NOT_FOUND => new HttpError(404, $e->getMessage()),
            Code::TYPE_INACTIVE => HttpError::badRequest('Task type is not active'),
            Code::CONFLICT => new HttpError(409, $e->getMessage()),
            Code::LEASE_LOST => self::leaseLost($e),
            Code::UNSUPPORTED_SERVER => self::unsupported($e),
            default => self::serverSide($e),
        };
    }

    /**
     * The library's text for a caller error, unless it is the wording of its JSON decoder
     * ("options_json has the wrong shape: invalid type: string, expected u32"), which names
     * the library's arguments and Rust types rather than anything the client sent. The routes
     * check each field first; this is the net under them.
     */
    private static function callerText(TaskManagerException $e): string
    {
        $text = $e->getMessage();
        if (preg_match('/_json has the wrong shape|expected [iuf](8|16|32|64)\b|invalid type: |unknown (field|variant) `/', $text)) {
            error_log('taskmanager api: refused: ' . $text);
            return 'Invalid request: a field has the wrong type or an unknown name';
        }
        return $text;
    }

    /** Not claimed at all: 400, as the original; claimed by someone else: 403. */
    public static function leaseLost(TaskManagerException $e): HttpError
    {
        $status = $e->getDetails()['status'] ?? null;
        return $status === 'claimed'
            ? new HttpError(403, 'Task is claimed by another worker')
            : HttpError::badRequest('Task is not in claimed state');
    }

    /**
     * On the embedded engine (a SQLite file), a call it does not run (flow control, schedules,
     * bulk cancel and retry): 501 Not Implemented with the library's message, which names the
     * call and what to configure instead; nothing about the server is in it. On a server the
     * code means the server is too old for the queue: a server-side failure as any other.
     */
    private static function unsupported(TaskManagerException $e): HttpError
    {
        if (!Engine::embedded()) {
            return self::serverSide($e);
        }
        return new HttpError(501, $e->getMessage());
    }

    private static function serverSide(TaskManagerException $e): HttpError
    {
        error_log(sprintf('taskmanager api: error %d: %s', $e->getTmCode(), $e->getMessage()));
        return match ($e->getTmCode()) {
            Code::CONNECTION => new HttpError(500, 'Database unavailable (TM_CONNECTION); try again shortly'),
            Code::OUTCOME_UNKNOWN => new HttpError(500, 'The connection to the database was lost during the change (TM_OUTCOME_UNKNOWN); repeating the request is safe'),
            Code::SCHEMA_OUTDATED => new HttpError(500, 'Database schema is outdated (TM_SCHEMA_OUTDATED): run the migrations'),
            Code::CONFIG => new HttpError(500, 'Server configuration error (TM_CONFIG); see the server log'),
            default => new HttpError(500, sprintf('Internal server error (code %d); see the server log', $e->getTmCode())),
        };
    }
}
