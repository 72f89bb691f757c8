import type { ValidateFunction } from 'ajv';
import { beforeAll, describe, expect, it } from 'vitest';

import {
  asArray,
  asRecord,
  describeErrors,
  editorAjv,
  exists,
  isRecord,
  readSchema,
  readText,
  readYaml,
  readYamlAsStrings,
} from './helpers';

/**
 * The Functions host cannot run here, so the published JSON schemas of each
 * file's owner are the closest real check of what the project ships. Every
 * schema also gets a negative control: a broken copy that must fail, so a
 * validator that accepts anything cannot pass these tests.
 */

describe('host.json', () => {
  const validate = editorAjv().compile(readSchema('host.json'));
  const hostJson = JSON.parse(readText('host.json')) as unknown;

  it('When host.json is checked against the SchemaStore schema, Then it is valid', () => {
    expect(validate(hostJson), describeErrors(validate)).toBe(true);
  });

  it('When host.json is read, Then it is a v2 host with the api route prefix of the contract', () => {
    const host = asRecord(hostJson, 'host.json');
    expect(host.version).toBe('2.0');
    const http = asRecord(asRecord(host.extensions, 'extensions').http, 'extensions.http');
    expect(http.routePrefix).toBe('api');
  });

  it('When host.json has a wrong version type, Then the schema refuses it (negative control)', () => {
    expect(validate({ ...asRecord(hostJson, 'host.json'), version: 2 })).toBe(false);
  });
});

describe('local.settings.sample.json', () => {
  const present = exists('local.settings.sample.json');

  /**
   * The SchemaStore schema is draft-04, which Ajv 8 no longer reads. It uses
   * no keyword whose meaning changed after draft-04 (only `id`), so it is read
   * as draft-07 with `id` renamed to `$id`; the test checks that premise.
   */
  function localSettingsSchema(): Record<string, unknown> {
    const schema = readSchema('local.settings.json');
    expect(schema.$schema).toBe('http://json-schema.org/draft-04/schema#');
    expect(JSON.stringify(schema)).not.toMatch(/"exclusive(Minimum|Maximum)"\s*:\s*(true|false)/);
    const { $schema: _draft, id, ...rest } = schema;
    return { ...rest, $id: id };
  }

  it.skipIf(!present)(
    'When the sample settings are checked against the SchemaStore schema, Then they are valid',
    () => {
      const validate = editorAjv().compile(localSettingsSchema());
      const sample = JSON.parse(readText('local.settings.sample.json')) as unknown;
      expect(validate(sample), describeErrors(validate)).toBe(true);
    },
  );

  it.skipIf(!present)(
    'When the sample settings are read, Then every value is a string and the worker runtime is node',
    () => {
      const sample = asRecord(JSON.parse(readText('local.settings.sample.json')), 'sample');
      const values = asRecord(sample.Values, 'Values');
      for (const [name, value] of Object.entries(values)) {
        expect(typeof value, `${name} must be a string: the host reads Values as strings`).toBe(
          'string',
        );
      }
      expect(values.FUNCTIONS_WORKER_RUNTIME).toBe('node');
    },
  );

  it.skipIf(!present)(
    'When the sample names an unknown worker runtime, Then the schema refuses it (negative control)',
    () => {
      const validate = editorAjv().compile(localSettingsSchema());
      expect(validate({ Values: { FUNCTIONS_WORKER_RUNTIME: 'nodejs' } })).toBe(false);
    },
  );

  it.runIf(!present)(
    'local.settings.sample.json is not written yet: its schema tests are skipped',
    () => {
      expect(present).toBe(false);
    },
  );
});

describe('GitHub action', () => {
  const path = 'clients/github-action/action.yml';
  let validate: ValidateFunction;
  beforeAll(() => {
    validate = editorAjv().compile(readSchema('github-action.json'));
  });

  it('When action.yml is checked against the SchemaStore action schema, Then it is valid', () => {
    expect(validate(readYaml(path)), describeErrors(validate)).toBe(true);
  });

  it('When an action declares an unknown runner, Then the schema refuses it (negative control)', () => {
    const action = asRecord(readYaml(path), 'action');
    const runs = { ...asRecord(action.runs, 'runs'), using: 'node23' };
    expect(validate({ ...action, runs })).toBe(false);
  });
});

describe('Azure Pipelines task.json', () => {
  const path = 'clients/azure-pipelines/task/task.json';
  let validate: ValidateFunction;

  /** The task-lib schema is draft-04 with only `id` to rename (as for local.settings.json). */
  beforeAll(() => {
    const schema = readSchema('azure-pipelines-task.json');
    expect(schema.$schema).toBe('http://json-schema.org/draft-04/schema');
    const { $schema: _draft, id, ...rest } = schema;
    validate = editorAjv().compile({ ...rest, $id: id as string });
  });

  it('When task.json is checked against the task-lib schema, Then it is valid', () => {
    expect(validate(JSON.parse(readText(path))), describeErrors(validate)).toBe(true);
  });

  it('When a handler is one the agent does not have, Then the schema refuses it (negative control)', () => {
    const task = asRecord(JSON.parse(readText(path)), 'task.json');
    const postjobexecution = { Node22: { target: 'dist/post.js' } };
    expect(validate({ ...task, postjobexecution })).toBe(false);
  });
});

describe('Azure Pipelines steps template', () => {
  const path = 'clients/azure-pipelines/templates/kv-lease-steps.yml';
  let validate: ValidateFunction;

  beforeAll(() => {
    // Type coercion: task inputs are typed boolean in the schema while every
    // YAML scalar of a pipeline is a string (as the service reads it).
    const ajv = editorAjv({ coerceTypes: true });
    ajv.addSchema(readSchema('azure-pipelines.service-schema.json'), 'azure-pipelines');
    validate = ajv.getSchema('azure-pipelines') as ValidateFunction;
  }, 60_000);

  /**
   * The schema's root accepts a template document `{ parameters, steps }`,
   * but it sees template expressions as plain text: the item
   * `- ${{ parameters.steps }}` is a string where a step mapping is expected,
   * although Azure Pipelines replaces it with the caller's steps before it
   * validates anything. So the root is validated with the expression items
   * left out, and the test pins which items those are.
   */
  function withoutExpressionItems(template: Record<string, unknown>): Record<string, unknown> {
    const steps = asArray(template.steps, 'steps');
    const expressions = steps.filter((step) => typeof step === 'string');
    expect(expressions).toEqual(['${{ parameters.steps }}']);
    return { ...template, steps: steps.filter((step) => typeof step !== 'string') };
  }

  it('When the template is checked against the Azure Pipelines schema, Then its parameters and steps are valid', () => {
    const template = asRecord(readYamlAsStrings(path), 'template');
    const document = withoutExpressionItems(template);
    expect(validate(document), describeErrors(validate)).toBe(true);
  });

  it('When a step has a misspelt key, Then the schema refuses it (negative control)', () => {
    const document = withoutExpressionItems(asRecord(readYamlAsStrings(path), 'template'));
    const steps = asArray(document.steps, 'steps').map((step, index) =>
      index === 1 && isRecord(step) ? { ...step, conditon: step.condition } : step,
    );
    expect(validate({ ...document, steps })).toBe(false);
  });

  it('When a task input is not one the task has, Then the schema refuses it (negative control)', () => {
    const document = withoutExpressionItems(asRecord(readYamlAsStrings(path), 'template'));
    const steps = asArray(document.steps, 'steps').map((step, index) => {
      if (index !== 0 || !isRecord(step)) return step;
      return { ...step, inputs: { ...asRecord(step.inputs, 'inputs'), scriptLanguage: 'bash' } };
    });
    expect(validate({ ...document, steps })).toBe(false);
  });
});
