import { z } from 'zod';

/**
 * The named schemas of the public contract, each a component of the OpenAPI
 * document (`#/components/schemas/<id>`). A schema that another one uses by
 * name is generated once and referenced, so no `$ref` can dangle.
 *
 * Requests are published as the broker accepts them (zod's input side),
 * resources as the broker answers them (its output side).
 */
export interface Component {
  id: string;
  description?: string;
}

export const requestSchemas = z.registry<Component>();
export const resourceSchemas = z.registry<Component>();
