"""Building the ServiceContext: shared by the web app and the command line (import)."""

from __future__ import annotations

from pathlib import Path

from fhir_server.blobs import open_store
from fhir_server.cache.redis_client import RedisClient
from fhir_server.cache.repository import CachedRepository
from fhir_server.definitions import Definitions
from fhir_server.formats import xml_layout
from fhir_server.paths import data_dir
from fhir_server.search.fhirpath import Extractor
from fhir_server.search.index import IndexBuilder
from fhir_server.search.limits import SearchLimits
from fhir_server.search.parse import Parser
from fhir_server.search.registry import Registry
from fhir_server.service.compartment import load_compartments
from fhir_server.service.context import SearchServices, ServiceContext
from fhir_server.service.repository import Repository
from fhir_server.settings import Settings
from fhir_server.storage.jobs import PgJobs
from fhir_server.storage.pool import FhirPool
from fhir_server.storage.replica import Replica
from fhir_server.storage.repository import PgRepository
from fhir_server.terminology import TerminologyService, load_catalog
from fhir_server.validation import Validator
from fhir_server.validation.invariants import Invariants
from fhir_server.validation.profiles import ProfileSet, no_constraints, parse_required


def build_search(settings: Settings, definitions: Definitions, profiles: Path,
                 terminology: TerminologyService | None = None) -> SearchServices:
    """The search registry, parser and index builder; ``terminology`` (default: the
    specification's, from ``profiles``) answers ``:in``/``:not-in``/``:above``/``:below``."""
    terminology = terminology or TerminologyService(load_catalog(profiles))
    registry = Registry.load(data_dir("search"), definitions.resource_types,
                             Extractor(definitions))
    registry.freeze_base()
    text = settings.search_text_language
    parser = Parser(registry, text, SearchLimits.of(settings))
    return SearchServices(registry=registry, parser=parser,
                          indexer=IndexBuilder(registry, settings.local_bases, text),
                          expand_valueset=terminology.members,
                          subsumption=terminology.related)


def load_profiles(settings: Settings, definitions: Definitions, profiles: Path,
                  invariants: Invariants | None = None) -> ProfileSet:
    """The shipped profiles (``profiles/*/``), PROFILES_DIR's and REQUIRED_PROFILES;
    their invariants are evaluated by ``invariants`` (none without)."""
    folders = [Path(settings.profiles_dir)] if settings.profiles_dir else []
    check = invariants.check_constraints if invariants is not None else no_constraints
    return ProfileSet.load(definitions, profiles, folders,
                           required=parse_required(settings.required_profiles),
                           constraints=check)


def build_validator(settings: Settings, definitions: Definitions,
                    profiles: Path) -> Validator:
    """The write validator: the base definitions, their invariants, the profiles."""
    # VALIDATE_INVARIANTS=false turns off the base's invariants and the profiles' alike.
    invariants = Invariants.load(definitions, profiles) if settings.validate_invariants \
        else None
    return Validator.load(profiles, definitions=definitions,
                          profiles=load_profiles(settings, definitions, profiles, invariants),
                          invariants=invariants or False)


def build_context(settings: Settings, pool: FhirPool,
                  redis: RedisClient | None = None,
                  replica: Replica | None = None) -> ServiceContext:
    """Definitions, validator, search machinery, repository and jobs over ``pool``, and
    the object store of Binary content.

    With ``redis`` (REDIS_URL set) reads go through the shared cache of current versions;
    with a ``replica`` (DATABASE_READ_URL set) requests' reads may run on it.
    """
    profiles = data_dir("profiles")
    repository: Repository = PgRepository(pool, data_dir("migrations"),
                                          settings.search_timeout_ms, replica=replica)
    if redis is not None:
        repository = CachedRepository(repository, redis)
    definitions = Definitions.load(profiles)
    xml_layout.use(definitions)  # the XML element order, built now rather than on first use
    validator = build_validator(settings, definitions, profiles)
    # The specification's CodeSystems and ValueSets and the profile folders' (read once).
    profile_set = validator.profile_set
    terminology = TerminologyService(
        (profile_set.catalog if profile_set is not None else None) or load_catalog(profiles))
    return ServiceContext(
        settings=settings,
        repository=repository,
        validator=validator,
        resource_types=definitions.resource_types,
        definitions=definitions,
        search=build_search(settings, definitions, profiles, terminology),
        terminology=terminology,
        compartments=load_compartments(data_dir("search")),
        jobs=PgJobs(pool),
        blobs=open_store(settings),
    )
