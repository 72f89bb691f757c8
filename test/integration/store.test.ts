import { TableLeaseStore } from '../../src/adapters/tables/lease-store';
import { leaseStoreContract } from '../contracts/lease-store.contract';
import { storageConnectionString, uniqueTable } from '../support/harness';

leaseStoreContract(
  'TableLeaseStore on azurite',
  () =>
    new TableLeaseStore({
      tableName: uniqueTable(),
      connectionString: storageConnectionString(),
    }),
);
