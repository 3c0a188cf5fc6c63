-- The original system's API routing tables, for publishing endpoints as rows (see
-- php/api/README.md, "Published endpoints"). A database upgraded from the original already
-- has them; the migrations neither create nor change them. Create them only to publish
-- endpoints on a new database:
--
--   mariadb -u USER -p DATABASE < php/api/sql/api_endpoints.sql
--
-- The shapes are the original's, so rows written for it work unchanged.

CREATE TABLE IF NOT EXISTS api_endpoints (
    id INT AUTO_INCREMENT PRIMARY KEY,
    path VARCHAR(255) NOT NULL,
    method ENUM('GET', 'POST', 'PUT', 'DELETE', 'PATCH') NOT NULL,
    description TEXT,
    action_type VARCHAR(100) NOT NULL,
    action_config_json TEXT NOT NULL,
    auth_required BOOLEAN DEFAULT FALSE,
    is_active BOOLEAN DEFAULT TRUE,
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
    UNIQUE KEY unique_route (path, method),
    INDEX idx_path (path),
    INDEX idx_active (is_active)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS api_validations (
    id INT AUTO_INCREMENT PRIMARY KEY,
    endpoint_id INT NOT NULL,
    param_name VARCHAR(100) NOT NULL,
    param_source ENUM('body', 'query', 'path', 'header') DEFAULT 'body',
    validation_rules_json TEXT NOT NULL,
    error_message VARCHAR(255),
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    FOREIGN KEY (endpoint_id) REFERENCES api_endpoints(id) ON DELETE CASCADE,
    INDEX idx_endpoint (endpoint_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Part of the original's schema; nothing reads it (the original did not either).
CREATE TABLE IF NOT EXISTS api_transformations (
    id INT AUTO_INCREMENT PRIMARY KEY,
    endpoint_id INT NOT NULL,
    transform_type ENUM('request', 'response') NOT NULL,
    transform_config_json TEXT NOT NULL,
    execution_order INT DEFAULT 0,
    is_active BOOLEAN DEFAULT TRUE,
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    FOREIGN KEY (endpoint_id) REFERENCES api_endpoints(id) ON DELETE CASCADE,
    INDEX idx_endpoint (endpoint_id),
    INDEX idx_order (execution_order)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
