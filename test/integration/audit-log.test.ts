import { TableClient } from '@azure/data-tables';

import { TableAuditLog } from '../../src/adapters/tables/audit-log';
import { silentLogger } from '../../src/domain/logger';
import { auditLogContract } from '../contracts/audit-log.contract';
import { storageConnectionString, uniqueTable } from '../support/harness';

auditLogContract(
  'TableAuditLog on azurite',
  () =>
    new TableAuditLog(
      TableClient.fromConnectionString(storageConnectionString(), `${uniqueTable()}audit`, {
        allowInsecureConnection: true,
      }),
      silentLogger,
    ),
);
