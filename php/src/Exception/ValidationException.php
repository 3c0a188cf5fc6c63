<?php

declare(strict_types=1);

namespace TaskManager\Exception;

/** Params do not match the task type's schema (TM_VALIDATION_FAILED). */
class ValidationException extends TaskManagerException
{
    /**
     * Every violation: ['path' => '/email', 'message' => '...'] (plus 'index' in a batch).
     *
     * @return list<array{path: string, message: string, index?: int}>
     */
    public function getViolations(): array
    {
        return $this->getDetails()['violations'] ?? [];
    }
}
